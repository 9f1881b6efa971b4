{#- Completed runs over finished runs (completed + failed); null when none
    finished, rather than a rate made up from runs still open. -#}
{% macro success_rate(completed, failed) -%}
    ({{ completed }})::double precision
    / nullif({{ completed }} + {{ failed }}, 0)
{%- endmacro %}
