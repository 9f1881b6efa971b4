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
    where {{ loaded_since_previous_build('changed_runs._load_watermark') }}
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
    where {{ loaded_since_previous_build('changed_runs._load_watermark') }}
{%- endmacro %}

{#- The UTC calendar day of a timestamptz, whatever the session time zone. -#}
{% macro utc_date(timestamp_column) -%}
    ({{ timestamp_column }} at time zone 'UTC')::date
{%- endmacro %}

{#- The rows of a (pipeline_name, run_date) relation on the changed_days of
    the calling model, an index probe per day. As a semi-join on the day
    pairs it would be planned as a scan of the whole table once the days
    hold a few percent of it; "offset 0" keeps the planner from turning the
    lateral back into that join. -#}
{% macro rows_on_changed_days(relation) -%}
    select rows_of_day.*
    from changed_days
    cross join lateral (
        select day_rows.*
        from {{ relation }} as day_rows
        where
            day_rows.pipeline_name = changed_days.pipeline_name
            and day_rows.run_date = changed_days.run_date
        offset 0
    ) as rows_of_day
{%- endmacro %}
