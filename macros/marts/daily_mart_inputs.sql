{#- The opening CTEs of a daily mart (one row set per pipeline_name and
    run_date, incremental by replace_partitions): in an incremental build,
    changed_days (changed_run_days of fct_pipeline_runs), then one CTE per
    input holding its rows on those days (rows_on_changed_days); in a full
    build, each input whole. inputs maps each CTE's name to its relation, in
    the order written. The last CTE has no trailing comma.
    fct_pipeline_runs is referenced whatever the build, so that dbt sees the
    dependency when it parses the model (is_incremental() is false then). -#}
{% macro daily_mart_inputs(inputs) -%}
    {%- set runs_relation = ref('fct_pipeline_runs') -%}
    {%- if is_incremental() %}
        changed_days as (
            {{ changed_run_days(runs_relation) }}
        ),
    {%- endif %}
    {%- for name, relation in inputs.items() %}

        {{ name }} as (
            {{ rows_on_changed_days(relation) if is_incremental()
                else 'select * from ' ~ relation }}
        ){{ ',' if not loop.last }}
    {%- endfor %}
{%- endmacro %}
