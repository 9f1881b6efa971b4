{#- Where both are set, the column is not earlier than other_column
    (completed_at >= created_at). Rows with either side null pass. -#}
{% test not_before(model, column_name, other_column) %}

with

rows_with_both as (
    select
        {{ column_name }} as checked_value,
        {{ other_column }} as other_value
    from {{ model }}
    where
        {{ column_name }} is not null
        and {{ other_column }} is not null
)

select * from rows_with_both
where checked_value < other_value

{% endtest %}
