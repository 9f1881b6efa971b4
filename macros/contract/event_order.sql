{#- An event's position in rule 2's order (event_order_window). -#}
{% macro event_order(partition_by) -%}
    row_number() over ({{ event_order_window(partition_by) }})
{%- endmacro %}
