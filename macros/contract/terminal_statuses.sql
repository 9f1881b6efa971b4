{#- The statuses that end a run or stage; the first terminal event in event
    order is final. -#}
{% macro terminal_statuses() -%}
    {{ return(['completed', 'failed']) }}
{%- endmacro %}
