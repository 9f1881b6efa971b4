{#- A post-hook: rows of runs absorbed into another run (int_openlineage__
    absorbed_runs) go, whichever build wrote them before the absorbing
    events arrived; their events now count in the home run's rows. -#}
{% macro delete_absorbed_runs(column) -%}
    delete from {{ this }}
    where {{ column }} in (
        select absorbed.absorbed_pipeline_id
        from {{ ref('int_openlineage__absorbed_runs') }} as absorbed
    )
{%- endmacro %}
