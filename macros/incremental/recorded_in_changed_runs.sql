{#- Like in_changed_runs, for a column that holds the run an event was
    recorded under (int_run_events__homed.recorded_pipeline_id): the changed
    runs and every run absorbed into one of them, whose events are theirs. -#}
{% macro recorded_in_changed_runs(column) -%}
    {{ column }} = any(
        array(
            select changed_runs.pipeline_id from changed_runs
            union
            select absorbed.absorbed_pipeline_id
            from {{ ref('int_openlineage__absorbed_runs') }} as absorbed
            where {{ in_changed_runs('absorbed.home_pipeline_id') }}
        )
    )
{%- endmacro %}
