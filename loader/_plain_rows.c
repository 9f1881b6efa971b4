/*
 * loader._plain_rows: a bulk batch of plain native lines, checked and turned into
 * binary COPY rows for raw.run_events without a Python object per event.
 *
 * Why C: under one GIL, the Python path spent 7-8 us of CPU an event (reading a line,
 * checking it, building an Event, writing a COPY row) where the raw COPY that `make bench`
 * compares with takes 4 us of wall time. `plain_rows` reads a batch's lines with a decoder
 * for one flat JSON object and keeps what the COPY needs; `copy_data` writes the rows once
 * the batch's runs and stages have ids.
 *
 * It accepts a line only when `loader.native_fast.decode_plain_line` accepts it and would
 * give the same Event, and declines more: any backslash, a number that is not a plain
 * non-negative integer, an event named by pipeline_id, a timestamp outside
 * YYYY-MM-DDTHH:MM:SS[.ffffff](Z|+HH:MM|-HH:MM). One declined line sends the whole batch the
 * Python way (`plain_rows` returns None), which decides it with its reasons.
 * tests/loader/test_plain_rows.py holds it to that, on the hostile corpus and mutations.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define MAX_NAME_LENGTH 200
#define ERROR_MESSAGE_LIMIT_BYTES (8 * 1024)
#define BIGINT_MAX INT64_MAX
#define INTEGER_MAX INT32_MAX
/* Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch. */
#define POSTGRES_EPOCH_US INT64_C(946684800000000)
/* 0001-01-01 and 10000-01-01 in Unix microseconds: Python's datetime range. */
#define MIN_TIME_US INT64_C(-62135596800000000)
#define END_TIME_US INT64_C(253402300800000000)

static const char *const STATUSES[] = {"pending", "running", "completed", "failed"};
#define STATUS_COUNT 4

enum field {
    F_EVENT_ID,
    F_RUN_KEY,
    F_PIPELINE_ID,
    F_PIPELINE_NAME,
    F_STAGE_NAME,
    F_STATUS,
    F_EVENT_TIME,
    F_RECORDS_PROCESSED,
    F_ERROR_MESSAGE,
    F_ATTEMPT,
    F_RUN_ATTEMPT,
    FIELD_COUNT
};
static const char *const FIELD_NAMES[FIELD_COUNT] = {
    "event_id", "run_key", "pipeline_id", "pipeline_name", "stage_name", "status",
    "event_time", "records_processed", "error_message", "attempt", "run_attempt",
};

/* A value as the decoder found it: a string's bytes (no escapes), an integer, or null. */
enum kind { K_ABSENT, K_NULL, K_STRING, K_INTEGER };
struct value {
    enum kind kind;
    const char *text;
    Py_ssize_t size;   /* bytes */
    Py_ssize_t length; /* characters */
    int64_t integer;
};

struct row {
    unsigned char event_id[16];
    int64_t time_us; /* Unix microseconds, UTC */
    int64_t records_processed;
    int32_t attempt;
    int32_t run_attempt;
    int8_t status;
    int8_t has_records;
    PyObject *run_key;       /* str, owned */
    PyObject *pipeline_name; /* str or NULL, owned */
    PyObject *stage_name;    /* str or NULL, owned */
    const char *message;     /* into the line's bytes, which `lines` keeps alive */
    Py_ssize_t message_size; /* -1: null */
};

typedef struct {
    PyObject_HEAD
    PyObject *lines; /* the batch's lines (a tuple of bytes): the rows point into them */
    Py_ssize_t count;
    struct row *rows;
} PlainRows;

/* ---- new event ids ------------------------------------------------------------------ */

/* UUIDv7 random bits, drawn from the OS in blocks; emptied in a forked child, so that two
 * processes never share one. Used under the GIL only. */
#define POOL_BYTES 8192
static unsigned char pool[POOL_BYTES];
static size_t pool_used = POOL_BYTES;

static void empty_pool(void) { pool_used = POOL_BYTES; }

static int random_bytes(unsigned char *out, size_t size) {
    if (pool_used + size > POOL_BYTES) {
        size_t filled = 0;
        while (filled < POOL_BYTES) {
            ssize_t got = getrandom(pool + filled, POOL_BYTES - filled, 0);
            if (got < 0 && errno == EINTR)
                continue; /* a signal came during a read past 256 bytes: read on */
            if (got < 0) {
                PyErr_SetFromErrno(PyExc_OSError);
                return -1;
            }
            filled += (size_t)got;
        }
        pool_used = 0;
    }
    memcpy(out, pool + pool_used, size);
    pool_used += size;
    return 0;
}

/* As loader.contract.new_event_id: 48 bits of Unix milliseconds, version 7, 74 random bits
 * around the RFC 4122 variant. */
static int new_event_id(unsigned char id[16]) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t unix_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
    if (random_bytes(id + 6, 10) < 0)
        return -1;
    for (int i = 0; i < 6; i++)
        id[i] = (unsigned char)(unix_ms >> (40 - 8 * i));
    id[6] = (unsigned char)(0x70 | (id[6] & 0x0F));
    id[8] = (unsigned char)(0x80 | (id[8] & 0x3F));
    return 0;
}

/* ---- the line's one flat object ----------------------------------------------------- */

static const char *skip_blanks(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* A string without escapes: its end (at the closing quote) and its length in characters,
 * or NULL for anything else (an escape, a control character, bytes that are not UTF-8). */
static const char *scan_string(const char *p, const char *end, Py_ssize_t *length) {
    Py_ssize_t characters = 0;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            *length = characters;
            return p;
        }
        if (c == '\\' || c < 0x20)
            return NULL;
        characters++;
        if (c < 0x80) {
            p++;
            continue;
        }
        /* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
        int more;
        unsigned char low = 0x80, high = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            more = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0)
                low = 0xA0;
            else if (c == 0xED)
                high = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0)
                low = 0x90;
            else if (c == 0xF4)
                high = 0x8F;
        } else
            return NULL;
        if (end - p <= more)
            return NULL;
        unsigned char second = (unsigned char)p[1];
        if (second < low || second > high)
            return NULL;
        for (int i = 2; i <= more; i++)
            if (((unsigned char)p[i] & 0xC0) != 0x80)
                return NULL;
        p += 1 + more;
    }
    return NULL;
}

static int field_of(const char *key, Py_ssize_t size) {
    for (int f = 0; f < FIELD_COUNT; f++)
        if ((Py_ssize_t)strlen(FIELD_NAMES[f]) == size && memcmp(FIELD_NAMES[f], key, size) == 0)
            return f;
    return -1;
}

/* Decode the line into its fields; 0 when it is not one flat object this decoder takes. */
static int decode_line(const char *p, const char *end, struct value values[FIELD_COUNT]) {
    for (int f = 0; f < FIELD_COUNT; f++)
        values[f].kind = K_ABSENT;
    p = skip_blanks(p, end);
    if (p >= end || *p != '{')
        return 0;
    p = skip_blanks(p + 1, end);
    if (p < end && *p == '}')
        return 0; /* no status: the general path gives the reason */
    for (;;) {
        Py_ssize_t length;
        if (p >= end || *p != '"')
            return 0;
        const char *key = p + 1;
        const char *key_end = scan_string(key, end, &length);
        if (key_end == NULL)
            return 0;
        int f = field_of(key, key_end - key);
        if (f < 0 || values[f].kind != K_ABSENT)
            return 0; /* a key the contract does not know, or given twice */
        p = skip_blanks(key_end + 1, end);
        if (p >= end || *p != ':')
            return 0;
        p = skip_blanks(p + 1, end);
        if (p >= end)
            return 0;
        struct value *value = &values[f];
        if (*p == '"') {
            const char *text = p + 1;
            const char *text_end = scan_string(text, end, &length);
            if (text_end == NULL)
                return 0;
            value->kind = K_STRING;
            value->text = text;
            value->size = text_end - text;
            value->length = length;
            p = text_end + 1;
        } else if (*p == 'n') {
            if (end - p < 4 || memcmp(p, "null", 4) != 0)
                return 0;
            value->kind = K_NULL;
            p += 4;
        } else if (*p >= '0' && *p <= '9') {
            int64_t integer = 0;
            const char *digits = p;
            while (p < end && *p >= '0' && *p <= '9') {
                int digit = *p - '0';
                if (integer > (INT64_MAX - digit) / 10)
                    return 0;
                integer = integer * 10 + digit;
                p++;
            }
            if (*digits == '0' && p - digits > 1)
                return 0; /* a leading zero is not JSON */
            if (p < end && (*p == '.' || *p == 'e' || *p == 'E'))
                return 0; /* a float: the general path decides */
            value->kind = K_INTEGER;
            value->integer = integer;
        } else
            return 0; /* true, false, a negative number, an array, an object */
        p = skip_blanks(p, end);
        if (p >= end)
            return 0;
        if (*p == '}')
            break;
        if (*p != ',')
            return 0;
        p = skip_blanks(p + 1, end);
    }
    return skip_blanks(p + 1, end) == end;
}

/* ---- the contract's checks ---------------------------------------------------------- */

static int hex_digit(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The canonical form 8-4-4-4-12; uuid.UUID takes others, which the general path reads. */
static int parse_event_id(const struct value *value, unsigned char id[16]) {
    if (value->size != 36)
        return 0;
    const char *p = value->text;
    int byte = 0;
    for (int i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (p[i] != '-')
                return 0;
            i++;
            continue;
        }
        int high = hex_digit(p[i]), low = hex_digit(p[i + 1]);
        if (high < 0 || low < 0)
            return 0;
        id[byte++] = (unsigned char)(high << 4 | low);
        i += 2;
    }
    return 1;
}

static int digits(const char *p, int count, int *out) {
    int n = 0;
    for (int i = 0; i < count; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        n = n * 10 + (p[i] - '0');
    }
    *out = n;
    return 1;
}

/* Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t year_of_era = y - era * 400;
    int64_t day_of_year = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468;
}

/* YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+HH:MM|-HH:MM) as Unix microseconds in UTC, as
 * datetime.fromisoformat then astimezone(UTC) give it; 0 for anything else. */
static int parse_time(const struct value *value, int64_t *time_us) {
    const char *p = value->text;
    Py_ssize_t size = value->size;
    int year, month, day, hour, minute, second, micro = 0;
    if (size < 20 || p[4] != '-' || p[7] != '-' || p[10] != 'T' || p[13] != ':' ||
        p[16] != ':')
        return 0;
    if (!digits(p, 4, &year) || !digits(p + 5, 2, &month) || !digits(p + 8, 2, &day) ||
        !digits(p + 11, 2, &hour) || !digits(p + 14, 2, &minute) || !digits(p + 17, 2, &second))
        return 0;
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (year < 1 || month < 1 || month > 12 || day < 1 ||
        day > month_days[month - 1] + (month == 2 && leap) || hour > 23 || minute > 59 ||
        second > 59)
        return 0;
    Py_ssize_t i = 19;
    if (p[i] == '.') {
        int places = 0;
        i++;
        while (i < size && p[i] >= '0' && p[i] <= '9' && places < 6) {
            micro = micro * 10 + (p[i] - '0');
            places++;
            i++;
        }
        if (places == 0)
            return 0; /* a seventh digit fails below, as no offset */
        for (; places < 6; places++)
            micro *= 10;
    }
    int64_t offset_s;
    if (i + 1 == size && p[i] == 'Z')
        offset_s = 0;
    else if (i + 6 == size && (p[i] == '+' || p[i] == '-') && p[i + 3] == ':') {
        int offset_hour, offset_minute;
        if (!digits(p + i + 1, 2, &offset_hour) || !digits(p + i + 4, 2, &offset_minute) ||
            offset_hour > 23 || offset_minute > 59)
            return 0;
        offset_s = (offset_hour * 3600 + offset_minute * 60) * (p[i] == '-' ? -1 : 1);
    } else
        return 0;
    int64_t seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 +
                      second - offset_s;
    int64_t at = seconds * 1000000 + micro;
    if (at < MIN_TIME_US || at >= END_TIME_US)
        return 0; /* astimezone(UTC) overflows: the general path gives the reason */
    *time_us = at;
    return 1;
}

static int is_name(const struct value *value) {
    return value->kind == K_NULL || value->kind == K_ABSENT ||
           (value->kind == K_STRING && value->length > 0 && value->length <= MAX_NAME_LENGTH);
}

static int is_count(const struct value *value, int64_t minimum, int64_t maximum) {
    return value->kind == K_NULL || value->kind == K_ABSENT ||
           (value->kind == K_INTEGER && value->integer >= minimum && value->integer <= maximum);
}

/* Whether `text` (a str, or NULL) holds the string `value`; -1 with an error set. */
static int same_text(PyObject *text, const struct value *value) {
    if (text == NULL || value->kind != K_STRING)
        return 0;
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &size);
    if (utf8 == NULL)
        return -1;
    return size == value->size && memcmp(utf8, value->text, size) == 0;
}

static PyObject *text_or_null(const struct value *value) {
    if (value->kind != K_STRING)
        return NULL;
    return PyUnicode_DecodeUTF8(value->text, value->size, "strict");
}

/* The line's row, or 0 when the Python path must decide it (-1: an error is set). */
static int check_line(PyObject *line, struct row *row, const struct row *previous) {
    struct value v[FIELD_COUNT];
    const char *text = PyBytes_AS_STRING(line);
    if (!decode_line(text, text + PyBytes_GET_SIZE(line), v))
        return 0;
    if (v[F_RUN_KEY].kind != K_STRING || !is_name(&v[F_RUN_KEY]) || v[F_PIPELINE_ID].kind == K_INTEGER ||
        v[F_PIPELINE_ID].kind == K_STRING || !is_name(&v[F_PIPELINE_NAME]) ||
        !is_name(&v[F_STAGE_NAME]) || v[F_STATUS].kind != K_STRING ||
        v[F_EVENT_TIME].kind != K_STRING || !is_count(&v[F_RECORDS_PROCESSED], 0, BIGINT_MAX) ||
        !is_count(&v[F_ATTEMPT], 1, INTEGER_MAX) || !is_count(&v[F_RUN_ATTEMPT], 1, INTEGER_MAX))
        return 0;
    if (v[F_ERROR_MESSAGE].kind == K_INTEGER ||
        (v[F_ERROR_MESSAGE].kind == K_STRING && v[F_ERROR_MESSAGE].size > ERROR_MESSAGE_LIMIT_BYTES))
        return 0; /* over the limit the general path truncates it into attributes */
    row->status = -1;
    for (int s = 0; s < STATUS_COUNT; s++)
        if ((Py_ssize_t)strlen(STATUSES[s]) == v[F_STATUS].size &&
            memcmp(STATUSES[s], v[F_STATUS].text, v[F_STATUS].size) == 0)
            row->status = (int8_t)s;
    if (row->status < 0 || !parse_time(&v[F_EVENT_TIME], &row->time_us))
        return 0;
    if (v[F_EVENT_ID].kind == K_STRING) {
        if (!parse_event_id(&v[F_EVENT_ID], row->event_id))
            return 0;
    } else if (v[F_EVENT_ID].kind == K_INTEGER) {
        return 0;
    } else if (new_event_id(row->event_id) < 0) {
        return -1;
    }
    row->has_records = v[F_RECORDS_PROCESSED].kind == K_INTEGER;
    row->records_processed = row->has_records ? v[F_RECORDS_PROCESSED].integer : 0;
    row->attempt = v[F_ATTEMPT].kind == K_INTEGER ? (int32_t)v[F_ATTEMPT].integer : 1;
    row->run_attempt = v[F_RUN_ATTEMPT].kind == K_INTEGER ? (int32_t)v[F_RUN_ATTEMPT].integer : 1;
    row->message = v[F_ERROR_MESSAGE].kind == K_STRING ? v[F_ERROR_MESSAGE].text : NULL;
    row->message_size = v[F_ERROR_MESSAGE].kind == K_STRING ? v[F_ERROR_MESSAGE].size : -1;
    /* A run's events come one after another: its key, and a stage's name, are one object. */
    int same = same_text(previous != NULL ? previous->run_key : NULL, &v[F_RUN_KEY]);
    if (same < 0)
        return -1;
    if (same)
        row->run_key = Py_NewRef(previous->run_key);
    else if ((row->run_key = text_or_null(&v[F_RUN_KEY])) == NULL)
        return -1;
    if (v[F_PIPELINE_NAME].kind == K_STRING &&
        (row->pipeline_name = text_or_null(&v[F_PIPELINE_NAME])) == NULL)
        return -1;
    same = same_text(previous != NULL ? previous->stage_name : NULL, &v[F_STAGE_NAME]);
    if (same < 0)
        return -1;
    if (same)
        row->stage_name = Py_NewRef(previous->stage_name);
    else if (v[F_STAGE_NAME].kind == K_STRING &&
             (row->stage_name = text_or_null(&v[F_STAGE_NAME])) == NULL)
        return -1;
    return 1;
}

/* ---- PlainRows ---------------------------------------------------------------------- */

static void clear_rows(struct row *rows, Py_ssize_t count) {
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_XDECREF(rows[i].run_key);
        Py_XDECREF(rows[i].pipeline_name);
        Py_XDECREF(rows[i].stage_name);
    }
}

static void PlainRows_dealloc(PlainRows *self) {
    clear_rows(self->rows, self->count);
    PyMem_Free(self->rows);
    Py_XDECREF(self->lines);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t PlainRows_len(PlainRows *self) { return self->count; }

/* run_key -> the name the batch gives the run (None: no name); None when the batch gives
 * one run two names (as loader.bulk_copy's _run_names). */
static PyObject *PlainRows_run_names(PlainRows *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *names = PyDict_New();
    if (names == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < self->count; i++) {
        struct row *row = &self->rows[i];
        PyObject *given = row->pipeline_name != NULL ? row->pipeline_name : Py_None;
        PyObject *named = PyDict_SetDefault(names, row->run_key, given);
        if (named == NULL)
            goto error;
        if (row->pipeline_name == NULL || named == row->pipeline_name)
            continue;
        if (named != Py_None) {
            int same = PyUnicode_Compare(named, row->pipeline_name);
            if (same == -1 && PyErr_Occurred())
                goto error;
            if (same != 0) {
                Py_DECREF(names);
                Py_RETURN_NONE;
            }
            continue;
        }
        if (PyDict_SetItem(names, row->run_key, row->pipeline_name) < 0)
            goto error;
    }
    return names;
error:
    Py_DECREF(names);
    return NULL;
}

/* The batch's distinct (run_key, stage_name) pairs. */
static PyObject *PlainRows_run_stages(PlainRows *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *pairs = PySet_New(NULL);
    if (pairs == NULL)
        return NULL;
    const struct row *last = NULL;
    for (Py_ssize_t i = 0; i < self->count; i++) {
        const struct row *row = &self->rows[i];
        if (row->stage_name == NULL)
            continue;
        if (last != NULL && last->run_key == row->run_key && last->stage_name == row->stage_name)
            continue;
        last = row;
        PyObject *pair = PyTuple_Pack(2, row->run_key, row->stage_name);
        if (pair == NULL || PySet_Add(pairs, pair) < 0) {
            Py_XDECREF(pair);
            Py_DECREF(pairs);
            return NULL;
        }
        Py_DECREF(pair);
    }
    return pairs;
}

/* ---- binary COPY ---------------------------------------------------------------------- */

struct buffer {
    char *data;
    Py_ssize_t size, capacity;
};

static int reserve(struct buffer *buffer, Py_ssize_t more) {
    if (buffer->size + more <= buffer->capacity)
        return 0;
    Py_ssize_t capacity = buffer->capacity * 2 > buffer->size + more ? buffer->capacity * 2
                                                                      : buffer->size + more;
    char *data = PyMem_Realloc(buffer->data, capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    buffer->data = data;
    buffer->capacity = capacity;
    return 0;
}

static void put16(struct buffer *b, int16_t value) {
    uint16_t v = (uint16_t)value;
    b->data[b->size++] = (char)(v >> 8);
    b->data[b->size++] = (char)v;
}

static void put32(struct buffer *b, int32_t value) {
    uint32_t v = (uint32_t)value;
    for (int shift = 24; shift >= 0; shift -= 8)
        b->data[b->size++] = (char)(v >> shift);
}

static void put64(struct buffer *b, int64_t value) {
    uint64_t v = (uint64_t)value;
    for (int shift = 56; shift >= 0; shift -= 8)
        b->data[b->size++] = (char)(v >> shift);
}

static void put_bytes(struct buffer *b, const void *data, Py_ssize_t size) {
    put32(b, (int32_t)size);
    memcpy(b->data + b->size, data, size);
    b->size += size;
}

static int lookup_id(PyObject *ids, PyObject *key, int64_t *id) {
    PyObject *found = PyDict_GetItemWithError(ids, key);
    if (found == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, key);
        return -1;
    }
    *id = PyLong_AsLongLong(found);
    return *id == -1 && PyErr_Occurred() ? -1 : 0;
}

/* The batch as binary COPY data for raw.run_events (event_id, pipeline_id, stage_id, status,
 * event_time, records_processed, error_message, attempt, run_attempt, attributes), header
 * and trailer included, with run ids from `run_ids` (run_key -> id) and stage ids from
 * `stage_ids` ((run id, stage name) -> id). */
static PyObject *PlainRows_copy_data(PlainRows *self, PyObject *args) {
    PyObject *run_ids, *stage_ids;
    if (!PyArg_ParseTuple(args, "O!O!:copy_data", &PyDict_Type, &run_ids, &PyDict_Type, &stage_ids))
        return NULL;
    static const char header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
    struct buffer b = {NULL, 0, 0};
    if (reserve(&b, 19 + self->count * 128 + 2) < 0)
        return NULL;
    memcpy(b.data, header, 19);
    b.size = 19;
    const struct row *last = NULL;
    int64_t pipeline_id = 0, stage_id = -1;
    for (Py_ssize_t i = 0; i < self->count; i++) {
        const struct row *row = &self->rows[i];
        if (last == NULL || last->run_key != row->run_key) {
            if (lookup_id(run_ids, row->run_key, &pipeline_id) < 0)
                goto error;
            last = NULL;
        }
        if (row->stage_name == NULL)
            stage_id = -1;
        else if (last == NULL || last->stage_name != row->stage_name) {
            PyObject *run = PyLong_FromLongLong(pipeline_id);
            PyObject *key = run == NULL ? NULL : PyTuple_Pack(2, run, row->stage_name);
            Py_XDECREF(run);
            if (key == NULL)
                goto error;
            int failed = lookup_id(stage_ids, key, &stage_id);
            Py_DECREF(key);
            if (failed < 0)
                goto error;
        }
        last = row;
        const char *status = STATUSES[row->status];
        Py_ssize_t status_size = (Py_ssize_t)strlen(status);
        Py_ssize_t message_size = row->message_size < 0 ? 0 : row->message_size;
        if (reserve(&b, 2 + 20 + 12 + 12 + 4 + status_size + 12 + 12 + 4 + message_size + 8 + 8 +
                            4 + 2) < 0)
            goto error;
        put16(&b, 10);
        put_bytes(&b, row->event_id, 16);
        put32(&b, 8);
        put64(&b, pipeline_id);
        if (stage_id < 0)
            put32(&b, -1);
        else {
            put32(&b, 8);
            put64(&b, stage_id);
        }
        put_bytes(&b, status, status_size);
        put32(&b, 8);
        put64(&b, row->time_us - POSTGRES_EPOCH_US);
        if (row->has_records) {
            put32(&b, 8);
            put64(&b, row->records_processed);
        } else
            put32(&b, -1);
        if (row->message_size < 0)
            put32(&b, -1);
        else
            put_bytes(&b, row->message, row->message_size);
        put32(&b, 4);
        put32(&b, row->attempt);
        put32(&b, 4);
        put32(&b, row->run_attempt);
        put32(&b, -1); /* attributes: a plain line has none */
    }
    put16(&b, -1);
    PyObject *data = PyBytes_FromStringAndSize(b.data, b.size);
    PyMem_Free(b.data);
    return data;
error:
    PyMem_Free(b.data);
    return NULL;
}

/* Each row's fields in the order of loader.contract.Event's, for the Python side to build
 * its Events (when the batch goes the full path after all, and in the tests): the id's 16
 * bytes, the status, the time in Unix microseconds, then the rest as they are (pipeline_id
 * and attributes always None). */
static PyObject *PlainRows_fields(PlainRows *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *all = PyList_New(self->count);
    if (all == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < self->count; i++) {
        const struct row *row = &self->rows[i];
        PyObject *message = row->message_size < 0
                                ? Py_NewRef(Py_None)
                                : PyUnicode_DecodeUTF8(row->message, row->message_size, "strict");
        PyObject *records =
            row->has_records ? PyLong_FromLongLong(row->records_processed) : Py_NewRef(Py_None);
        PyObject *item =
            message == NULL || records == NULL
                ? NULL
                : Py_BuildValue("(y#sLOOOOOOiiO)", (const char *)row->event_id, (Py_ssize_t)16,
                                STATUSES[row->status], (long long)row->time_us, row->run_key,
                                Py_None, row->pipeline_name != NULL ? row->pipeline_name : Py_None,
                                row->stage_name != NULL ? row->stage_name : Py_None, records,
                                message, row->attempt, row->run_attempt, Py_None);
        Py_XDECREF(message);
        Py_XDECREF(records);
        if (item == NULL) {
            Py_DECREF(all);
            return NULL;
        }
        PyList_SET_ITEM(all, i, item);
    }
    return all;
}

static PlainRows *new_rows(PyObject *lines, struct row *rows, Py_ssize_t count);

/* Whether two rows in different parts hold the same event_id (`part_of`: each row's part). */
static int shares_an_event_id(const struct row *rows, Py_ssize_t count, const Py_ssize_t *part_of) {
    size_t slots = 16;
    while (slots < (size_t)count * 2)
        slots *= 2;
    Py_ssize_t *table = PyMem_Calloc(slots, sizeof(Py_ssize_t)); /* row index + 1; 0: free */
    if (table == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int shared = 0;
    for (Py_ssize_t i = 0; i < count && !shared; i++) {
        uint64_t high, low; /* both halves: an id of another version may vary in either */
        memcpy(&high, rows[i].event_id, sizeof high);
        memcpy(&low, rows[i].event_id + 8, sizeof low);
        uint64_t hash = (low ^ (high << 29 | high >> 35)) * UINT64_C(0x9E3779B97F4A7C15);
        for (size_t slot = hash >> 32 & (slots - 1);; slot = (slot + 1) & (slots - 1)) {
            if (table[slot] == 0) {
                table[slot] = i + 1;
                break;
            }
            const struct row *seen = &rows[table[slot] - 1];
            if (memcmp(seen->event_id, rows[i].event_id, 16) == 0) {
                shared = part_of[table[slot] - 1] != part_of[i];
                break;
            }
        }
    }
    PyMem_Free(table);
    return shared;
}

/* The rows split by their run_key's hash into `count` parts, each with its rows' positions
 * in the batch: [(PlainRows, [position, ...]), ...]. A run's events all fall in one part,
 * so parts can be written side by side without sharing a run. When two parts would hold
 * one event_id, all the rows go in the first part: which of the two is stored must not
 * depend on which part commits first (the file's first wins). */
static PyObject *PlainRows_partition(PlainRows *self, PyObject *arg) {
    Py_ssize_t count = PyLong_AsSsize_t(arg);
    if (count == -1 && PyErr_Occurred())
        return NULL;
    if (count < 1) {
        PyErr_SetString(PyExc_ValueError, "partition needs at least one part");
        return NULL;
    }
    Py_ssize_t *part_of = PyMem_Calloc(self->count > 0 ? self->count : 1, sizeof(Py_ssize_t));
    Py_ssize_t *sizes = PyMem_Calloc(count, sizeof(Py_ssize_t));
    PyObject *parts = PyList_New(0);
    if (part_of == NULL || sizes == NULL || parts == NULL) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        goto error;
    }
    for (Py_ssize_t i = 0; i < self->count; i++) {
        Py_hash_t hash = PyObject_Hash(self->rows[i].run_key);
        if (hash == -1 && PyErr_Occurred())
            goto error;
        part_of[i] = (Py_ssize_t)((Py_uhash_t)hash % (Py_uhash_t)count);
    }
    int shared = shares_an_event_id(self->rows, self->count, part_of);
    if (shared < 0)
        goto error;
    for (Py_ssize_t i = 0; i < self->count; i++) {
        if (shared)
            part_of[i] = 0;
        sizes[part_of[i]]++;
    }
    for (Py_ssize_t part = 0; part < count; part++) {
        struct row *rows = PyMem_Calloc(sizes[part] > 0 ? sizes[part] : 1, sizeof(struct row));
        PyObject *lines = PyTuple_New(sizes[part]);
        PyObject *positions = PyList_New(sizes[part]);
        if (rows == NULL || lines == NULL || positions == NULL) {
            if (!PyErr_Occurred())
                PyErr_NoMemory();
            PyMem_Free(rows);
            Py_XDECREF(lines);
            Py_XDECREF(positions);
            goto error;
        }
        Py_ssize_t n = 0;
        for (Py_ssize_t i = 0; i < self->count; i++) {
            if (part_of[i] != part)
                continue;
            rows[n] = self->rows[i];
            Py_INCREF(rows[n].run_key);
            Py_XINCREF(rows[n].pipeline_name);
            Py_XINCREF(rows[n].stage_name);
            PyTuple_SET_ITEM(lines, n, Py_NewRef(PyTuple_GET_ITEM(self->lines, i)));
            PyObject *position = PyLong_FromSsize_t(i);
            if (position == NULL) {
                clear_rows(rows, n + 1);
                PyMem_Free(rows);
                Py_DECREF(lines);
                Py_DECREF(positions);
                goto error;
            }
            PyList_SET_ITEM(positions, n, position);
            n++;
        }
        PlainRows *rows_part = new_rows(lines, rows, n);
        Py_DECREF(lines);
        PyObject *pair = rows_part == NULL ? NULL : PyTuple_Pack(2, rows_part, positions);
        Py_XDECREF(rows_part);
        Py_DECREF(positions);
        if (pair == NULL || PyList_Append(parts, pair) < 0) {
            Py_XDECREF(pair);
            goto error;
        }
        Py_DECREF(pair);
    }
    PyMem_Free(part_of);
    PyMem_Free(sizes);
    return parts;
error:
    PyMem_Free(part_of);
    PyMem_Free(sizes);
    Py_XDECREF(parts);
    return NULL;
}

static PyMethodDef PlainRows_methods[] = {
    {"run_names", (PyCFunction)PlainRows_run_names, METH_NOARGS, NULL},
    {"run_stages", (PyCFunction)PlainRows_run_stages, METH_NOARGS, NULL},
    {"copy_data", (PyCFunction)PlainRows_copy_data, METH_VARARGS, NULL},
    {"fields", (PyCFunction)PlainRows_fields, METH_NOARGS, NULL},
    {"partition", (PyCFunction)PlainRows_partition, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods PlainRows_as_sequence = {.sq_length = (lenfunc)PlainRows_len};

static PyTypeObject PlainRowsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "loader._plain_rows.PlainRows",
    .tp_basicsize = sizeof(PlainRows),
    .tp_dealloc = (destructor)PlainRows_dealloc,
    .tp_as_sequence = &PlainRows_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A batch of plain native lines, checked, as rows for raw.run_events.",
    .tp_methods = PlainRows_methods,
};

/* plain_rows(lines: Iterable[bytes]) -> PlainRows | None */
static PyObject *plain_rows(PyObject *Py_UNUSED(module), PyObject *given) {
    /* A tuple of its own: the rows point into the lines, which the caller could drop. */
    PyObject *lines = PySequence_Tuple(given);
    if (lines == NULL)
        return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(lines);
    struct row *rows = PyMem_Calloc(count > 0 ? count : 1, sizeof(struct row));
    if (rows == NULL) {
        Py_DECREF(lines);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *line = PyTuple_GET_ITEM(lines, i);
        int checked = PyBytes_CheckExact(line) ? check_line(line, &rows[i], i ? &rows[i - 1] : NULL)
                                               : 0;
        if (checked != 1) {
            clear_rows(rows, i + 1);
            PyMem_Free(rows);
            Py_DECREF(lines);
            if (checked < 0)
                return NULL;
            Py_RETURN_NONE;
        }
    }
    PyObject *self = (PyObject *)new_rows(lines, rows, count);
    Py_DECREF(lines);
    return self;
}

/* A PlainRows owning `rows` (freed here on failure) and holding a reference to `lines`. */
static PlainRows *new_rows(PyObject *lines, struct row *rows, Py_ssize_t count) {
    PlainRows *self = PyObject_New(PlainRows, &PlainRowsType);
    if (self == NULL) {
        clear_rows(rows, count);
        PyMem_Free(rows);
        return NULL;
    }
    self->lines = Py_NewRef(lines);
    self->count = count;
    self->rows = rows;
    return self;
}

static PyMethodDef module_methods[] = {
    {"plain_rows", plain_rows, METH_O,
     "A batch's lines as PlainRows when every one is a plain native line, else None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "loader._plain_rows",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__plain_rows(void) {
    if (PyType_Ready(&PlainRowsType) < 0)
        return NULL;
    if (pthread_atfork(NULL, NULL, empty_pool) != 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "PlainRows", (PyObject *)&PlainRowsType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
