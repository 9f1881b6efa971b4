-- depends_on: {{ ref('stg_raw__run_events') }}
{#- Runs that are not runs: a run key that is the OpenLineage runId of events
    recorded in another run. Events name their parent or root by runId, and
    that runId became a run key before the parent's own events said where it
    belongs (in any arrival order, both are in raw eventually):
    - home_stage_id null: the runId's own events are run-level elsewhere (an
      Airflow DAG run, keyed by its Airflow run_id, named as root by dbt
      running inside one of its tasks): the same run under another key; its
      stages are the home run's stages of the same names.
    - home_stage_id set: the runId is a stage (or deeper) of the home run (the
      Airflow task dbt ran inside): everything recorded under the absorbed
      run is activity of that stage.
    One level: a home run is never absorbed itself (its key is not a runId
    whose events were recorded elsewhere). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='absorbed_pipeline_id',
    indexes=[
        {'columns': ['absorbed_pipeline_id'], 'unique': True},
        {'columns': ['home_pipeline_id']},
        {'columns': ['_load_watermark']},
    ],
) }}

with

run_ids as (
    select * from {{ ref('int_openlineage__run_ids') }}
),

runs as (
    select * from {{ ref('stg_raw__runs') }}
),

{% if is_incremental() %}
    {# Either side may be the new one: a runId recorded since the last build,
        or a run whose key a new event registered. #}
    new_run_ids as not materialized (
        select * from run_ids
        where {{ loaded_since_previous_build('_load_watermark') }}
    ),

    runs_with_new_events as not materialized (
        select new_events.pipeline_id
        from {{ ref('stg_raw__run_events') }} as new_events
        where {{ loaded_since_previous_build('new_events.load_xid') }}
    ),
{% endif %}

pairs as (
    select
        runs.pipeline_id as absorbed_pipeline_id,
        run_ids.pipeline_id as home_pipeline_id,
        run_ids.stage_id as home_stage_id
    from {{ 'new_run_ids' if is_incremental() else 'run_ids' }} as run_ids
    inner join runs
        on run_ids.run_key = runs.run_key
    where run_ids.pipeline_id != runs.pipeline_id
    {% if is_incremental() %}
        union
        select
            runs.pipeline_id as absorbed_pipeline_id,
            run_ids.pipeline_id as home_pipeline_id,
            run_ids.stage_id as home_stage_id
        from runs
        inner join run_ids
            on runs.run_key = run_ids.run_key
        where
            runs.pipeline_id in (
                select runs_with_new_events.pipeline_id
                from runs_with_new_events
            )
            and run_ids.pipeline_id != runs.pipeline_id
    {% endif %}
),

{# One row keeps the build's watermark when nothing was absorbed: without
    it an empty table would send every build back to the first event. No run
    has id 0. #}
final as (
    select
        absorbed_pipeline_id,
        home_pipeline_id,
        home_stage_id,
        {{ current_load_watermark() }} as _load_watermark
    from pairs
    union all
    select
        0 as absorbed_pipeline_id,
        null as home_pipeline_id,
        null as home_stage_id,
        {{ current_load_watermark() }} as _load_watermark
)

select * from final
