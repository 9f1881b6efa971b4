{#- The status enum, defined once: accepted_values tests and the derivation
    rules read it. Listed in precedence order, lowest first: when events of a
    run or stage share an event_time, the higher one is ordered first, so a
    failed event beats a completed one stamped at the same moment. -#}
{% macro pipeline_statuses() -%}
    {{ return(['pending', 'running', 'completed', 'failed']) }}
{%- endmacro %}

{% macro terminal_statuses() -%}
    {{ return(['completed', 'failed']) }}
{%- endmacro %}

{#- An integer ordering statuses by precedence (pending = 1 ... failed = 4). -#}
{% macro status_precedence(status_column) -%}
    case {{ status_column }}
    {%- for status in pipeline_statuses() %}
        when '{{ status }}' then {{ loop.index }}
    {%- endfor %}
    end
{%- endmacro %}

{% macro is_terminal(status_column) -%}
    {{ status_column }} in ('{{ terminal_statuses() | join("', '") }}')
{%- endmacro %}
