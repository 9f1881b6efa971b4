{#- The (pipeline_name, run_date) days a daily mart writes: in an incremental
    build every changed day, so that a day left without rows still gets one,
    the placeholder that clears it; in a full build the days of rows_cte. -#}
{% macro daily_mart_days(rows_cte) -%}
    {%- if is_incremental() -%}
        select * from changed_days
    {%- else -%}
        select distinct
            pipeline_name,
            run_date
        from {{ rows_cte }}
    {%- endif -%}
{%- endmacro %}
