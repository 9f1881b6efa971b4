{#- Every non-null value of the column is within [min_value, max_value],
    either bound optional, both inclusive (records >= 0, attempts >= 1,
    rates between 0 and 1). Nulls pass: pair with not_null where they are
    wrong. -#}
{% test is_between(model, column_name, min_value=none, max_value=none) %}
    {%- if min_value is none and max_value is none %}
        {{ exceptions.raise_compiler_error(
            "is_between on " ~ column_name ~ ": set min_value, max_value or both"
        ) }}
    {%- endif %}

with

checked_values as (
    select {{ column_name }} as checked_value
    from {{ model }}
    where {{ column_name }} is not null
)

select * from checked_values
where
    {%- if min_value is not none %}
        checked_value < {{ min_value }}
    {%- endif %}
    {%- if min_value is not none and max_value is not none %}
        or
    {%- endif %}
    {%- if max_value is not none %}
        checked_value > {{ max_value }}
    {%- endif %}

{% endtest %}
