{#- The UTC calendar day of a timestamptz, whatever the session time zone. -#}
{% macro utc_date(timestamp_column) -%}
    ({{ timestamp_column }} at time zone 'UTC')::date
{%- endmacro %}
