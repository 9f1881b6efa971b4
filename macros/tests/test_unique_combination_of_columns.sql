{#- The grain test: no two rows share the same values in
    combination_of_columns (nulls compare equal, as in a group by). -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

with

grain_counts as (
    select
        {{ combination_of_columns | join(',\n        ') }},
        count(*) as row_count
    from {{ model }}
    group by {{ combination_of_columns | join(', ') }}
)

select * from grain_counts
where row_count > 1

{% endtest %}
