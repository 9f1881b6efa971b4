{#- Schemas are named as configured (staging, public), not prefixed with the
    target schema: the loader, BI tools and the original dashboards expect
    fixed names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
