# The loader and the dbt project, for the `ledger` service of docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
ENV DBT_PROFILES_DIR=/app PYTHONDONTWRITEBYTECODE=1
COPY pyproject.toml README.md ./
COPY loader ./loader
RUN pip install --no-cache-dir .
COPY dbt_project.yml profiles.yml ./
COPY models ./models
COPY macros ./macros
COPY seeds ./seeds
COPY dbt_tests ./dbt_tests
CMD ["python", "-m", "loader", "--help"]
