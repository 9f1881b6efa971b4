{#- The rows of a (pipeline_name, run_date) relation on the changed_days of
    the calling model, an index probe per day. As a semi-join on the day
    pairs it would be planned as a scan of the whole table once the days
    hold a few percent of it; "offset 0" keeps the planner from turning the
    lateral back into that join. -#}
{% macro rows_on_changed_days(relation) -%}
    select rows_of_day.*
    from changed_days
    cross join lateral (
        select day_rows.*
        from {{ relation }} as day_rows
        where
            day_rows.pipeline_name = changed_days.pipeline_name
            and day_rows.run_date = changed_days.run_date
        offset 0
    ) as rows_of_day
{%- endmacro %}
