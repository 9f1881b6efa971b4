{#- A one-time upgrade, run at the start of every dbt command (on-run-start
    in dbt_project.yml): marts built when _load_watermark was an xid8 get the
    bigint column their models now write, with the same values, rather than
    failing on_schema_change until a full refresh. Does nothing once done. -#}
{% macro migrate_load_watermarks() -%}
    {%- if execute -%}
        {%- set found = run_query(
            "select table_name::text from information_schema.columns"
            ~ " where table_schema = 'marts'"
            ~ " and column_name = '_load_watermark' and data_type = 'xid8'"
        ) -%}
        {%- for table_name in found.columns[0].values() -%}
            {%- do log(
                'marts.' ~ table_name ~ '._load_watermark: xid8 to bigint',
                info=true
            ) -%}
            {%- do run_query(
                'alter table ' ~ adapter.quote('marts') ~ '.'
                ~ adapter.quote(table_name)
                ~ ' alter column _load_watermark type bigint'
                ~ ' using _load_watermark::text::bigint'
            ) -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
