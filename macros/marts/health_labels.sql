{#- The pipeline_health label enum, defined once: the model's rule and the
    accepted_values test both read it. Worst first, in the order the rule
    checks them. -#}
{% macro health_labels() -%}
    {{ return(['stale', 'failing', 'degraded', 'healthy', 'unknown']) }}
{%- endmacro %}
