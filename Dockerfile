# katakana-scorer: one image for the site, the workers and the admin command line.
#
#   docker compose up --build            (see docker-compose.yml for the services and their settings)
#
# Two Python environments, on purpose:
#   /opt/katakana/app      the service (FastAPI, Celery, SQLAlchemy, ...)
#   /opt/katakana/runtime  the pinned reference runtime trainee code runs in, inside bubblewrap;
#                          scorer.runtime finds it there by default (KATAKANA_RUNTIME_PYTHON).
# and a third, optional one:
#   /opt/katakana/runtime-tensorflow  the same libraries plus TensorFlow (CPU) and Keras, for
#                          submissions that import them (about 1.9 GB); found there by default.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# bubblewrap: the sandbox. libseccomp2: the sandbox's syscall filter (pyseccomp). fonts-ipafont-gothic:
# Japanese glyphs for the one chart drawn on the server, the history PNG (app/web/history_png.py; the
# pages' charts are SVG drawn by the browser); a few MB, where fonts-noto-cjk is a hundred.
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap libseccomp2 ca-certificates fonts-ipafont-gothic \
    && rm -rf /var/lib/apt/lists/*

# The reference runtime first: it changes rarely, so this layer stays cached.
COPY runtime/requirements.txt /tmp/runtime-requirements.txt
RUN python -m venv /opt/katakana/runtime \
    && /opt/katakana/runtime/bin/pip install -r /tmp/runtime-requirements.txt

# The TensorFlow runtime (docker compose build --build-arg WITH_TENSORFLOW=0 leaves it out: Keras
# submissions are then refused at the pre-flight, and the upload page says it is not installed).
# Every dependency is pinned in the file, as scripts/setup.sh installs it.
ARG WITH_TENSORFLOW=1
COPY runtime/requirements-tensorflow.txt /tmp/runtime-tensorflow-requirements.txt
RUN if [ "$WITH_TENSORFLOW" = 1 ]; then \
        python -m venv /opt/katakana/runtime-tensorflow \
        && /opt/katakana/runtime-tensorflow/bin/pip install --no-deps -r /tmp/runtime-tensorflow-requirements.txt \
        && /opt/katakana/runtime-tensorflow/bin/pip check; \
    fi

WORKDIR /app
COPY . /app
RUN python -m venv /opt/katakana/app \
    && /opt/katakana/app/bin/pip install -c constraints.txt -e ".[service]"

# The site runs as this unprivileged user. The scoring worker runs as root inside its container so
# that each sandboxed run can get its own unprivileged uid (scorer.sandbox.uidpool); see
# docker-compose.yml for the container settings bubblewrap needs.
RUN useradd --system --uid 10001 --home-dir /var/lib/katakana --create-home katakana \
    && mkdir -p /var/lib/katakana /var/lib/katakana-testsets \
    && chown katakana:katakana /var/lib/katakana \
    && chmod 700 /var/lib/katakana-testsets

ENV PATH=/opt/katakana/app/bin:$PATH \
    KATAKANA_DATA_DIR=/var/lib/katakana \
    KATAKANA_TESTSET_DIR=/var/lib/katakana-testsets \
    KATAKANA_RUNTIME_PYTHON=/opt/katakana/runtime/bin/python

EXPOSE 8000
CMD ["uvicorn", "--factory", "app.main:create_app", "--host", "0.0.0.0", "--port", "8000", "--no-proxy-headers"]
