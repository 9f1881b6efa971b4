# The loader and the dbt project, for the `ledger` service of docker-compose.yml.
# The bulk loader's line checker is C (loader/_plain_rows.c): a stage with a compiler builds
# the loader's wheel, and the image installs it without one.
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY loader ./loader
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
WORKDIR /app
ENV DBT_PROFILES_DIR=/app PYTHONDONTWRITEBYTECODE=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY dbt_project.yml profiles.yml ./
COPY models ./models
COPY macros ./macros
COPY seeds ./seeds
COPY dbt_tests ./dbt_tests
CMD ["python", "-m", "loader", "--help"]
