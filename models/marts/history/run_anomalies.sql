{#- Completed runs only, on both sides: a failed run's records and duration
    say how it failed, not how the pipeline behaves. -#}
{%- set baseline_runs = var('anomaly_baseline_runs') | int -%}

{{ config(
    incremental_strategy='replace_partitions',
    unique_key='pipeline_id',
    placeholder_column='metric',
    indexes=[
        {'columns': ['pipeline_id']},
        {'columns': ['_load_watermark']},
    ],
) }}

with

{# Not materialized: an incremental build reads it (in baseline_starts and
    measurements) through the (pipeline_name, created_at) index, for a few
    pipelines and weeks. #}
all_measurements as not materialized (
    select
        pipeline_id,
        run_key,
        pipeline_name,
        created_at,
        'records_processed' as metric,
        records_processed::double precision as measured_value
    from {{ ref('fct_pipeline_runs') }}
    where status = 'completed' and records_processed is not null
    union all
    select
        pipeline_id,
        run_key,
        pipeline_name,
        created_at,
        'duration_seconds' as metric,
        duration_seconds as measured_value
    from {{ ref('fct_pipeline_runs') }}
    where status = 'completed' and duration_seconds is not null
),

{% if is_incremental() %}
    {# A finished run whose measurements (status, created_at, records,
        duration) changed since this model's last build changes the
        baselines of the runs after it, so each of its pipelines is rescored
        from its earliest such run on (created_at only moves earlier, so that
        also covers where the run used to be). A run re-derived with the same
        measurements (a late heartbeat) changes no baseline; runs rebuilt only
        because they are still open are in none. #}
    rescored_pipelines as (
        select
            pipeline_name,
            min(created_at) as rescored_from
        from {{ ref('fct_pipeline_runs') }}
        where
            {{ loaded_since_previous_build('_measured_watermark', 'bigint') }}
            and completed_at is not null
        group by pipeline_name
    ),

    {# Where the first rescored runs' baselines begin: the earliest of the
        last anomaly_baseline_runs measurements of each metric before it. #}
    baseline_starts as (
        select
            rescored_pipelines.pipeline_name,
            rescored_pipelines.rescored_from,
            least(
                rescored_pipelines.rescored_from,
                min(previous_measurements.created_at)
            ) as measured_from
        from rescored_pipelines
        cross join
            (values ('records_processed'), ('duration_seconds'))
                as metrics (metric)
        left join lateral (
            select all_measurements.created_at
            from all_measurements
            where
                all_measurements.pipeline_name
                = rescored_pipelines.pipeline_name
                and all_measurements.metric = metrics.metric
                and all_measurements.created_at
                < rescored_pipelines.rescored_from
            order by all_measurements.created_at desc
            limit {{ baseline_runs }}
        ) as previous_measurements on true
        group by
            rescored_pipelines.pipeline_name,
            rescored_pipelines.rescored_from
    ),
{% endif %}

{# Lateral, each pipeline's rows a range of the (pipeline_name, created_at)
    index: as a join it would be planned as a scan of every run. "offset 0"
    keeps the planner from turning the lateral back into that join. #}
measurements as (
    {% if is_incremental() %}
        select rescored_measurements.*
        from baseline_starts
        cross join lateral (
            select all_measurements.*
            from all_measurements
            where
                all_measurements.pipeline_name = baseline_starts.pipeline_name
                and all_measurements.created_at
                >= baseline_starts.measured_from
            offset 0  -- noqa: AM09
        ) as rescored_measurements
    {% else %}
        select * from all_measurements
    {% endif %}
),

{# The frame ends one row before the run: it is never its own baseline. #}
baselines as (
    select
        *,
        count(measured_value) over previous_runs as baseline_runs,
        avg(measured_value) over previous_runs as baseline_mean,
        stddev_samp(measured_value) over previous_runs as baseline_stddev
    from measurements
    window previous_runs as (
        partition by pipeline_name, metric
        order by created_at, pipeline_id
        rows between {{ baseline_runs }} preceding and 1 preceding
    )
),

{# A flat baseline has no spread to divide by: any departure from it is
    anomalous, with no z-score. #}
scored as (
    select
        *,
        (measured_value - baseline_mean) / nullif(baseline_stddev, 0)
            as z_score
    from baselines
    where baseline_runs >= {{ var('anomaly_min_baseline_runs') }}
),

anomalies as (
    select
        pipeline_id,
        run_key,
        pipeline_name,
        created_at,
        metric,
        measured_value,
        baseline_mean,
        baseline_stddev,
        baseline_runs::integer as baseline_runs,
        z_score,
        case
            when measured_value > baseline_mean then 'high' else 'low'
        end as direction,
        {{ current_load_watermark('bigint') }} as _load_watermark
    from scored
    where
        abs(z_score) >= {{ var('anomaly_z_threshold') }}
        or (baseline_stddev = 0 and measured_value != baseline_mean)
),

{% if is_incremental() %}
    {# The rescored runs' anomalies only: the measurements before
        rescored_from are read as baselines, and their own scores, from
        truncated baselines, are not kept. #}
    rescored_anomalies as (
        select anomalies.*
        from anomalies
        inner join baseline_starts
            on
                anomalies.pipeline_name = baseline_starts.pipeline_name
                and anomalies.created_at >= baseline_starts.rescored_from
    ),

    {# One placeholder (null metric) per rescored run: it clears the run's
        old rows, anomalous or not any more. Typed nulls: a CTE's bare null
        would be text. #}
    rescored_run_placeholders as (
        select
            runs.pipeline_id,
            runs.run_key,
            runs.pipeline_name,
            runs.created_at,
            null::text as metric,
            null::double precision as measured_value,
            null::double precision as baseline_mean,
            null::double precision as baseline_stddev,
            null::integer as baseline_runs,
            null::double precision as z_score,
            null::text as direction,
            {{ current_load_watermark('bigint') }} as _load_watermark
        from baseline_starts
        cross join lateral (
            select
                rescored_runs.pipeline_id,
                rescored_runs.run_key,
                rescored_runs.pipeline_name,
                rescored_runs.created_at
            from {{ ref('fct_pipeline_runs') }} as rescored_runs
            where
                rescored_runs.pipeline_name = baseline_starts.pipeline_name
                and rescored_runs.created_at >= baseline_starts.rescored_from
            offset 0  -- noqa: AM09
        ) as runs
    ),
{% endif %}

final as (
    {% if is_incremental() %}
        select * from rescored_anomalies
        union all
        select * from rescored_run_placeholders
    {% else %}
        select * from anomalies
    {% endif %}
)

select * from final
