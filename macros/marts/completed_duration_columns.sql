{#- Aggregate columns of a daily mart: the median, 95th percentile
    (percentile_cont, interpolated) and longest duration_seconds of the
    group's completed rows (runs or stages); null when none completed. -#}
{% macro completed_duration_columns() -%}
    percentile_cont(0.5) within group (order by duration_seconds)
    filter (where status = 'completed') as duration_p50_seconds,
    percentile_cont(0.95) within group (order by duration_seconds)
    filter (where status = 'completed') as duration_p95_seconds,
    max(duration_seconds) filter (
        where status = 'completed'
    ) as duration_max_seconds
{%- endmacro %}
