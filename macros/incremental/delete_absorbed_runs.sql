{#- A pre-hook: rows of runs absorbed into another run (int_openlineage__
    absorbed_runs) go, whichever build wrote them before the absorbing events
    arrived; their events now count in the home run's rows. Before the build,
    not after it: a stage of such a run may come back under its home run with
    the same id. Nothing to do when the model is (re)built from scratch. -#}
{% macro delete_absorbed_runs(column) -%}
    {#- Outside the condition: dbt learns a hook's refs by rendering it. -#}
    {%- set absorbed_runs = ref('int_openlineage__absorbed_runs') -%}
    {%- set built = adapter.get_relation(
        database=this.database, schema=this.schema, identifier=this.identifier
    ) -%}
    {%- if built is not none and not flags.FULL_REFRESH -%}
        delete from {{ this }}
        where {{ column }} in (
            select absorbed.absorbed_pipeline_id
            from {{ absorbed_runs }} as absorbed
        )
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
