{#- True when the status is one of terminal_statuses(). -#}
{% macro is_terminal(status_column) -%}
    {{ status_column }} in ('{{ terminal_statuses() | join("', '") }}')
{%- endmacro %}
