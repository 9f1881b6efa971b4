{#- The column (completed_at) is set exactly when the status is terminal
    (completed or failed): a terminal row without it, or a pending or running
    row with it, fails. -#}
{% test set_iff_terminal(model, column_name, status_column='status') %}

with

rows_checked as (
    select
        {{ status_column }} as status,
        {{ column_name }} as checked_value,
        coalesce({{ is_terminal(status_column) }}, false) as is_terminal,
        {{ column_name }} is not null as has_value
    from {{ model }}
)

select * from rows_checked
where is_terminal != has_value

{% endtest %}
