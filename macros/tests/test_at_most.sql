{#- Every non-null value of the column is <= max_value (rates <= 1). Nulls
    pass: pair with not_null where they are wrong. -#}
{% test at_most(model, column_name, max_value) %}

with

checked_values as (
    select {{ column_name }} as checked_value
    from {{ model }}
    where {{ column_name }} is not null
)

select * from checked_values
where checked_value > {{ max_value }}

{% endtest %}
