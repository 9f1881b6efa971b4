{#- Error messages that differ only in their values fall into one failure
    reason: keep the first line (a stack trace's headline), then mask quoted
    values, UUIDs, paths and URLs (any word with a slash), hexadecimal ids
    (0x..., or six hex digits or more mixing digits and letters), then every
    other number.
    Order matters: a path or UUID holds digits that must not become <n>
    first. -#}
{% macro error_signature(message_column) -%}
    left(
        regexp_replace(
            regexp_replace(
                regexp_replace(
                    regexp_replace(
                        regexp_replace(
                            regexp_replace(
                                split_part(
                                    btrim({{ message_column }}, E' \t\r\n'),
                                    E'\n',
                                    1
                                ),
                                $re$'[^']*'|"[^"]*"$re$, '<value>', 'g'
                            ),
                            '[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}',
                            '<uuid>',
                            'g'
                        ),
                        '[^[:space:],;()<>]*/[^[:space:],;()<>]*',
                        '<path>',
                        'g'
                    ),
                    '\m(0x[0-9a-fA-F]+|(?=[a-fA-F]*[0-9])(?=[0-9]*[a-fA-F])'
                    || '[0-9a-fA-F]{6,})\M',
                    '<hex>',
                    'g'
                ),
                '[0-9]+([.][0-9]+)*',
                '<n>',
                'g'
            ),
            '[[:space:]]+',
            ' ',
            'g'
        ),
        500
    )
{%- endmacro %}
