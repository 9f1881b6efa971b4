{#- An integer ordering statuses by precedence (pending = 1 ... failed = 4). -#}
{% macro status_precedence(status_column) -%}
    case {{ status_column }}
    {%- for status in pipeline_statuses() %}
        when '{{ status }}' then {{ loop.index }}
    {%- endfor %}
    end
{%- endmacro %}
