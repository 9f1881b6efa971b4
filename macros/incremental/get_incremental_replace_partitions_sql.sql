{#- An incremental strategy for the daily marts: every row of a partition
    (the unique_key columns, e.g. pipeline_name and run_date) present in the
    new rows is deleted, then the new rows are inserted. A partition left
    empty by the rebuild (a late event moved its only run to an earlier day)
    still comes with one placeholder row, whose config placeholder_column is
    null: it clears the partition and is not inserted. delete+insert would
    leave such a partition's old rows in place. -#}
{% macro get_incremental_replace_partitions_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set partition = arg_dict['unique_key'] -%}
    {%- set partition = [partition] if partition is string else partition -%}
    {%- set placeholder = config.require('placeholder_column') -%}
    {%- set columns = get_quoted_csv(
        arg_dict['dest_columns'] | map(attribute='name')
    ) -%}
    delete from {{ target }}
    where ({{ partition | join(', ') }}) in (
        select {{ partition | join(', ') }} from {{ source }}
    );

    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
    where {{ placeholder }} is not null
{%- endmacro %}
