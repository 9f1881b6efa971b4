{#- Error messages that differ only in their values fall into one failure
    reason: keep the first line (a stack trace's headline; CR, LF or CRLF
    ends it), then mask quoted values, paths and URLs (any word with a
    slash, whatever it holds: a UUID in a file name is part of the path),
    UUIDs, hexadecimal ids (0x..., or six hex digits or more mixing digits
    and letters), then every other number; collapse white space and trim.
    A quote opens a value only where no letter or digit precedes it, and
    closes it only where none follows: the apostrophe of "can't" is not a
    quote. A message with no text left has the signature '<no message>'.
    Order matters: a path or UUID holds digits that must not become <n>
    first. -#}
{% macro error_signature(message_column) -%}
    coalesce(
        nullif(
            btrim(
                left(
                    regexp_replace(
                        regexp_replace(
                            regexp_replace(
                                regexp_replace(
                                    regexp_replace(
                                        regexp_replace(
                                            substring(
                                                btrim(
                                                    {{ message_column }},
                                                    E' \t\r\n'
                                                )
                                                from E'^[^\r\n]*'
                                            ),
                                            $re$(?<![[:alnum:]_])$re$
                                            || $re$('([^']|'[[:alnum:]_])*'$re$
                                            || $re$|"[^"]*")(?![[:alnum:]_])$re$,
                                            '<value>',
                                            'g'
                                        ),
                                        '[^[:space:],;()<>]*/[^[:space:],;()<>]*',
                                        '<path>',
                                        'g'
                                    ),
                                    '[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}'
                                    || '-[0-9a-fA-F]{12}',
                                    '<uuid>',
                                    'g'
                                ),
                                '\m(0x[0-9a-fA-F]+|(?=[a-fA-F]*[0-9])'
                                || '(?=[0-9]*[a-fA-F])[0-9a-fA-F]{6,})\M',
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
                ),
                ' '
            ),
            ''
        ),
        '<no message>'
    )
{%- endmacro %}
