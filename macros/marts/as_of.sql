{#- The moment "now" means in the marts (stale runs, trailing windows, health):
    the build's transaction start, or var as_of so that tests and backfilled
    reports are reproducible. as_of must be a timestamp with an offset
    (2026-03-10T12:00:00Z, 2026-03-10 12:00:00+01:00): without one it would
    be read in the session's time zone. Anything else stops the build. -#}
{% macro as_of() -%}
    {%- set pinned = var('as_of', none) -%}
    {%- if pinned is none or pinned == '' -%}
        current_timestamp
    {%- else -%}
        {%- set text = pinned | string -%}
        {#- modules is dbt's; sqlfluff's jinja templater has none. -#}
        {%- if modules is defined -%}
            {%- set timestamp_with_offset = modules.re.compile(
                '[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}'
                ~ '(:[0-9]{2}([.][0-9]{1,6})?)?'
                ~ '(Z|[+-][0-9]{2}(:?[0-9]{2})?)'
            ) -%}
            {%- if not timestamp_with_offset.fullmatch(text) -%}
                {{ exceptions.raise_compiler_error(
                    "var as_of must be a timestamp with an offset, e.g. "
                    ~ "2026-03-10T12:00:00Z; got " ~ (text | tojson)
                ) }}
            {%- endif -%}
        {%- endif -%}
        {{ string_literal(text) }}::timestamptz
    {%- endif -%}
{%- endmacro %}
