-- Prune's candidates: the runs dbt built as ended (completed or failed) before
-- the cut-off ($1 ->> 'before'). Run with the rights of what dbt built's owner
-- (schema.read_built).
select pipelines.id as pipeline_id
from public.pipelines
where
    pipelines.status in ('completed', 'failed')
    and pipelines.completed_at < ($1 ->> 'before')::timestamptz
