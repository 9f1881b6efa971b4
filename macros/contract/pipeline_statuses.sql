{#- The status enum, defined once: accepted_values tests and the derivation
    rules read it. Listed in precedence order, lowest first: when events of a
    run or stage share an event_time, the higher one is ordered first, so a
    failed event beats a completed one stamped at the same moment. -#}
{% macro pipeline_statuses() -%}
    {{ return(['pending', 'running', 'completed', 'failed']) }}
{%- endmacro %}
