{#- The OpenLineage fields of every RunEvent the loader kept whole, typed:
    the run, its job, its parent and root, and the Airflow identifiers the
    placement rules read. Everything else stays in run_event (the document). -#}
with

source as (
    select * from {{ source('raw', 'run_events') }}
    where attributes ? 'openlineage'
),

documents as (
    select
        event_id,
        pipeline_id,
        stage_id,
        attributes ->> 'openlineage_placement' as placement,
        attributes -> 'openlineage' as run_event
    from source
),

typed as (
    select
        event_id,
        pipeline_id,
        stage_id,
        placement,
        run_event ->> 'eventType' as event_type,
        (run_event ->> 'eventTime')::timestamptz as event_time,
        (run_event #>> '{run,runId}')::uuid as run_id,
        run_event #>> '{job,namespace}' as job_namespace,
        run_event #>> '{job,name}' as job_name,
        run_event #>> '{job,facets,jobType,jobType}' as job_type,
        run_event #>> '{job,facets,jobType,integration}' as job_integration,
        (run_event #>> '{run,facets,parent,run,runId}')::uuid as parent_run_id,
        run_event #>> '{run,facets,parent,job,name}' as parent_job_name,
        (run_event #>> '{run,facets,parent,root,run,runId}')::uuid
            as root_run_id,
        run_event #>> '{run,facets,parent,root,job,name}' as root_job_name,
        (run_event #>> '{run,facets,airflow,taskInstance,try_number}')::integer
            as airflow_try_number,
        (run_event #>> '{run,facets,airflow,taskInstance,map_index}')::integer
            as airflow_map_index,
        coalesce(
            run_event #>> '{run,facets,airflowDagRun,dagRun,run_id}',
            run_event #>> '{run,facets,airflow,dagRun,run_id}'
        ) as airflow_run_id,
        coalesce(
            run_event #>> '{run,facets,airflowDagRun,dagRun,clear_number}',
            run_event #>> '{run,facets,airflow,dagRun,clear_number}'
        )::integer as airflow_clear_number,
        run_event #>> '{run,facets,errorMessage,message}' as error_message,
        run_event -> 'inputs' as inputs,
        run_event -> 'outputs' as outputs,
        run_event ->> 'producer' as producer_url,
        run_event
    from documents
)

select * from typed
