{#- Rule 2 of the event contract: events of one run or stage in the order
    that decides its status. Ties on event_time go to the higher-precedence
    status; event_id makes the order total, so every build agrees. -#}
{% macro event_order_window(partition_by) -%}
    partition by {{ partition_by }}
    order by
        event_time,
        {{ status_precedence('status') }} desc,
        event_id
{%- endmacro %}
