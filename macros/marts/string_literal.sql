{#- A text value as a SQL string literal that nothing in it can leave: an
    E'' string (its meaning does not depend on standard_conforming_strings)
    with every backslash and quote doubled. For vars, which come from the
    command line. -#}
{% macro string_literal(value) -%}
    E'{{ value | string | replace("\\", "\\\\") | replace("'", "''") }}'
{%- endmacro %}
