{#- Every non-null value of the column is >= min_value (records >= 0,
    attempts >= 1). Nulls pass: pair with not_null where they are wrong. -#}
{% test at_least(model, column_name, min_value) %}

with

checked_values as (
    select {{ column_name }} as checked_value
    from {{ model }}
    where {{ column_name }} is not null
)

select * from checked_values
where checked_value < {{ min_value }}

{% endtest %}
