{#- The (pipeline_name, run_date) days a daily mart must rebuild: the days of
    the runs that fct_pipeline_runs re-derived since this model's last build,
    and the days this model holds that such a run may have left. A run's
    created_at only moves earlier (a late event can only lower a minimum), and
    its old value was one of its event times, so the day it left lies between
    its new run_date and the day of its last event. -#}
{% macro changed_run_days(runs_relation) -%}
    select
        changed_runs.pipeline_name,
        changed_runs.run_date
    from {{ runs_relation }} as changed_runs
    where {{
        loaded_since_previous_build('changed_runs._load_watermark', 'bigint')
    }}
    union
    select
        built_days.pipeline_name,
        built_days.run_date
    from {{ this }} as built_days
    inner join {{ runs_relation }} as changed_runs
        on
            built_days.pipeline_name = changed_runs.pipeline_name
            and built_days.run_date > changed_runs.run_date
            and built_days.run_date
            <= {{ utc_date('changed_runs.last_event_at') }}
    where {{
        loaded_since_previous_build('changed_runs._load_watermark', 'bigint')
    }}
{%- endmacro %}
