{#- Runs created in the `days` days up to as_of(). -#}
{% macro within_days(days) -%}
    created_at >= {{ as_of() }} - interval '{{ days }} days'
{%- endmacro %}
