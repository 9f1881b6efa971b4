{#- The moment "now" means in the marts (stale runs, trailing windows, health):
    the build's transaction start, or var as_of (a timestamp with offset) so
    that tests and backfilled reports are reproducible. -#}
{% macro as_of() -%}
    {%- set pinned = var('as_of', none) -%}
    {%- if pinned -%}
        '{{ pinned }}'::timestamptz
    {%- else -%}
        current_timestamp
    {%- endif -%}
{%- endmacro %}
