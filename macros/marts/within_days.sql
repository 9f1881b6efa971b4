{#- Runs created in the `days` days up to as_of(), each day 24 hours: an
    interval in days would be added in the session's time zone, and be an
    hour short or long across a daylight saving change. -#}
{% macro within_days(days) -%}
    created_at >= {{ as_of() }} - interval '{{ (days | int) * 24 }} hours'
{%- endmacro %}
