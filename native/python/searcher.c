/*
 * searcher.c - single-call paths for one query: vecdb._native.HnswSearcher (one query on a
 * full-precision HNSW graph, with or without a row mask: query checks, the thread's visited set,
 * the traversal (the dispatched vdb_hnsw_search), the top k, the mapping to ids and the result
 * arrays) and topk_at_one (the same for an exact scan of a filter's matching rows).
 *
 * Why they exist: one query on a 100k x 384 graph costs ~200 us, and the Python layers around the
 * walk (validation, planning, id mapping, result assembly; ~20-40 us, most of it cache misses
 * after the walk) decide whether the public search call keeps up with hnswlib and faiss. Every
 * other query (batches, quantized graphs, odd inputs) takes the general path in
 * vecdb/index/hnsw.py, which runs the same C traversal through numba; the searcher answers None
 * for anything it does not take, so that path can validate it and explain.
 *
 * The numpy C API is used here only (result arrays and argument checks cost nanoseconds instead
 * of the buffer protocol's microseconds), imported by vdb_searcher_register.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define PY_ARRAY_UNIQUE_SYMBOL vecdb_native_ARRAY_API
#include <numpy/arrayobject.h>

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/graph_heap.h"
#include "vecdb_kernels.h"

#ifndef _WIN32
#include <pthread.h>
#endif

int vdb_searcher_register(PyObject *module);

/* ---- the calling thread's visited set ----
 * visited[i] == tag marks node i as seen by the current query; a new query takes the next tag,
 * so the array is cleared only when the 16-bit tag wraps (once per 65535 queries). One set per
 * thread: the walk runs without the GIL, so threads search concurrently. */
typedef struct {
    uint16_t *tags;
    int64_t size;
    uint16_t tag;
} visited_set;

#ifdef _WIN32
static __declspec(thread) visited_set tls_visited;
static visited_set *thread_visited(void) { return &tls_visited; }
static int visited_init(void) { return 0; }
#else
static pthread_key_t visited_key;

static void visited_free(void *p) {
    visited_set *v = p;
    free(v->tags);
    free(v);
}

static int visited_init(void) { return pthread_key_create(&visited_key, visited_free); }

static visited_set *thread_visited(void) {
    visited_set *v = pthread_getspecific(visited_key);
    if (v == NULL) {
        v = calloc(1, sizeof *v);
        if (v == NULL || pthread_setspecific(visited_key, v) != 0) {
            free(v);
            return NULL;
        }
    }
    return v;
}
#endif

/* A fresh tag over at least n nodes; 0 when the set cannot grow (out of memory). */
static uint16_t next_tag(visited_set *v, int64_t n) {
    if (v->size < n) {
        free(v->tags);
        v->tags = calloc((size_t)n, sizeof(uint16_t));
        v->size = v->tags ? n : 0;
        v->tag = 0;
        if (v->tags == NULL) return 0;
    }
    if (++v->tag == 0) {
        memset(v->tags, 0, (size_t)v->size * sizeof(uint16_t));
        v->tag = 1;
    }
    return v->tag;
}

/* ---- the searcher object ---- */

enum { METRIC_L2, METRIC_IP, METRIC_COSINE };

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyArrayObject *rows, *links0, *counts0, *up_off, *links_up, *counts_up;
    PyArrayObject *row_of, *row_scale; /* NULL: node i is row i */
    int64_t n, d, width0, width_up, entry, max_level;
    int metric;
} HnswSearcher;

/* obj as a C-contiguous, aligned ndarray of `type` with `ndim` dimensions (a new reference), or
 * NULL with TypeError/ValueError naming it. */
static PyArrayObject *graph_array(PyObject *obj, const char *name, int type, const char *dtype, int ndim) {
    if (!PyArray_Check(obj) || PyArray_TYPE((PyArrayObject *)obj) != type) {
        PyErr_Format(PyExc_TypeError, "%s must be a %s numpy array, got %.200s", name, dtype, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_NDIM(a) != ndim || !PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISALIGNED(a)) {
        PyErr_Format(PyExc_ValueError, "%s must be a C-contiguous, aligned %d-dimensional array", name, ndim);
        return NULL;
    }
    Py_INCREF(a);
    return a;
}

static void searcher_dealloc(HnswSearcher *self) {
    Py_XDECREF(self->rows);
    Py_XDECREF(self->links0);
    Py_XDECREF(self->counts0);
    Py_XDECREF(self->up_off);
    Py_XDECREF(self->links_up);
    Py_XDECREF(self->counts_up);
    Py_XDECREF(self->row_of);
    Py_XDECREF(self->row_scale);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *searcher_call(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames);

static PyObject *searcher_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    PyObject *orows, *olinks0, *ocounts0, *oup_off, *olinks_up, *ocounts_up, *orow_of = Py_None,
                                                                               *orow_scale = Py_None;
    long long entry, max_level, n;
    const char *metric;
    static char *names[] = {"rows", "links0", "counts0", "up_off", "links_up", "counts_up",
                            "entry", "max_level", "n", "metric", "row_of", "row_scale", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOOLLLs|OO:HnswSearcher", names, &orows, &olinks0, &ocounts0,
                                     &oup_off, &olinks_up, &ocounts_up, &entry, &max_level, &n, &metric, &orow_of,
                                     &orow_scale))
        return NULL;
    int m;
    if (strcmp(metric, "l2") == 0)
        m = METRIC_L2;
    else if (strcmp(metric, "ip") == 0)
        m = METRIC_IP;
    else if (strcmp(metric, "cosine") == 0)
        m = METRIC_COSINE;
    else {
        PyErr_Format(PyExc_ValueError, "metric must be 'l2', 'ip' or 'cosine', got '%s'", metric);
        return NULL;
    }
    HnswSearcher *self = (HnswSearcher *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->vectorcall = searcher_call;
    self->metric = m;
    if (!(self->rows = graph_array(orows, "rows", NPY_FLOAT32, "float32", 2)) ||
        !(self->links0 = graph_array(olinks0, "links0", NPY_INT32, "int32", 2)) ||
        !(self->counts0 = graph_array(ocounts0, "counts0", NPY_INT32, "int32", 1)) ||
        !(self->up_off = graph_array(oup_off, "up_off", NPY_INT32, "int32", 1)) ||
        !(self->links_up = graph_array(olinks_up, "links_up", NPY_INT32, "int32", 2)) ||
        !(self->counts_up = graph_array(ocounts_up, "counts_up", NPY_INT32, "int32", 1)))
        goto fail;
    self->d = PyArray_DIM(self->rows, 1);
    self->width0 = PyArray_DIM(self->links0, 1);
    self->width_up = PyArray_DIM(self->links_up, 1);
    if (orow_of != Py_None && !(self->row_of = graph_array(orow_of, "row_of", NPY_INT32, "int32", 1))) goto fail;
    if (orow_scale != Py_None) {
        if (self->row_of == NULL) {
            PyErr_SetString(PyExc_ValueError, "row_scale needs row_of");
            goto fail;
        }
        if (!(self->row_scale = graph_array(orow_scale, "row_scale", NPY_FLOAT32, "float32", 1))) goto fail;
    }
    /* The traversal trusts these: every per-node array must cover the n nodes it may visit, and
     * every row the map names must be a row of `rows`. */
    if (self->row_of != NULL) {
        if (n < 1 || n > PyArray_DIM(self->row_of, 0) || (self->row_scale && n > PyArray_DIM(self->row_scale, 0))) {
            PyErr_Format(PyExc_ValueError, "row_of / row_scale do not cover n = %lld nodes", n);
            goto fail;
        }
        const int32_t *map = PyArray_DATA(self->row_of);
        for (long long i = 0; i < n; i++)
            if (map[i] < 0 || map[i] >= PyArray_DIM(self->rows, 0)) {
                PyErr_Format(PyExc_ValueError, "row_of[%lld] = %d is not a row of rows", i, (int)map[i]);
                goto fail;
            }
    }
    const int64_t rows_needed = self->row_of ? 1 : n;
    if (n < 1 || rows_needed > PyArray_DIM(self->rows, 0) || n > PyArray_DIM(self->links0, 0) ||
        n > PyArray_DIM(self->counts0, 0) || n > PyArray_DIM(self->up_off, 0) ||
        PyArray_DIM(self->counts_up, 0) < PyArray_DIM(self->links_up, 0)) {
        PyErr_Format(PyExc_ValueError, "graph arrays do not cover n = %lld nodes", n);
        goto fail;
    }
    if (entry < 0 || entry >= n || max_level < 0 || self->d < 1) {
        PyErr_Format(PyExc_ValueError, "entry %lld / max_level %lld out of range for n = %lld", entry, max_level, n);
        goto fail;
    }
    self->n = n;
    self->entry = entry;
    self->max_level = max_level;
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

/* The query as a (d,) or (1, d) float32 array this searcher takes, or NULL (not an error). */
static const float *query_data(const HnswSearcher *self, PyObject *obj) {
    if (!PyArray_CheckExact(obj)) return NULL;
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_TYPE(a) != NPY_FLOAT32 || !PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISALIGNED(a)) return NULL;
    int nd = PyArray_NDIM(a);
    if (!((nd == 1 && PyArray_DIM(a, 0) == self->d) ||
          (nd == 2 && PyArray_DIM(a, 0) == 1 && PyArray_DIM(a, 1) == self->d)))
        return NULL;
    return (const float *)PyArray_DATA(a);
}

/* An exact int in [1, limit], or -1. */
static int64_t small_int(PyObject *obj, int64_t limit) {
    if (!PyLong_CheckExact(obj)) return -1;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    return (overflow || v < 1 || v > limit) ? -1 : (int64_t)v;
}

/* The ids argument: None (*out = NULL) or a C-contiguous, aligned int64 array of at least `span`
 * ids (*out = its data); -1 with TypeError otherwise. */
static int ids_arg(PyObject *obj, int64_t span, const int64_t **out) {
    *out = NULL;
    if (obj == Py_None) return 0;
    PyArrayObject *a = (PyArrayObject *)obj;
    if (!PyArray_Check(obj) || PyArray_TYPE(a) != NPY_INT64 || PyArray_NDIM(a) != 1 || !PyArray_IS_C_CONTIGUOUS(a) ||
        !PyArray_ISALIGNED(a) || PyArray_DIM(a, 0) < span) {
        PyErr_Format(PyExc_TypeError, "ids must be None or a C-contiguous int64 array of at least %lld ids",
                     (long long)span);
        return -1;
    }
    *out = (const int64_t *)PyArray_DATA(a);
    return 0;
}

#define MAX_K 10000
#define MAX_EF 100000
#define STACK_BYTES 16384

PyDoc_STRVAR(searcher_doc,
             "HnswSearcher(rows, links0, counts0, up_off, links_up, counts_up, entry, max_level, n, metric, "
             "row_of=None, row_scale=None)\n\n"
             "One query per call on a full-precision HNSW graph (the arrays of vecdb/kernels/graph.py; rows "
             "(n, d) float32, unit length for 'cosine'), held for the object's life. With row_of ((>= n,) int32), "
             "node i is row row_of[i] of rows (a graph over a subset of a shared matrix) and the results are "
             "rows; row_scale ((>= n,) float32) multiplies node i's distance (1/|x| on raw rows for 'cosine').\n\n"
             "searcher(query, k, ef, ids, allowed) -> (ids (1, k) int64, distances (1, k) float32, filled) | None\n\n"
             "query: (d,) or (1, d) float32, C-contiguous; k in 1..10000 and ef in 1..100000 (exact ints); ids: "
             "an int64 array mapping offsets (rows, with row_of) to ids, or None for offsets; allowed: None or a 1-D bool mask "
             "of the rows that may be returned (rows past its end may not; the walk still passes through the "
             "others). Results ascending by distance, "
             "padded -1 / +inf after `filled`. Returns None, without error, for a query it does not take (other "
             "type, dtype or shape, a NaN or inf, k or ef out of range): the caller's general path handles it.");

static PyObject *searcher_call(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    HnswSearcher *self = (HnswSearcher *)callable;
    if (PyVectorcall_NARGS(nargsf) != 5 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0)) {
        PyErr_SetString(PyExc_TypeError, "HnswSearcher takes 5 positional arguments: query, k, ef, ids, allowed");
        return NULL;
    }
    const float *q = query_data(self, args[0]);
    int64_t k = small_int(args[1], MAX_K), ef = small_int(args[2], MAX_EF);
    if (q == NULL || k < 0 || ef < 0) Py_RETURN_NONE;
    const int64_t *ids;
    /* ids map what the walk returns: rows of `rows` through a row map, else nodes */
    if (ids_arg(args[3], self->row_of ? PyArray_DIM(self->rows, 0) : self->n, &ids) < 0) return NULL;
    const uint8_t *allowed = NULL;
    int64_t n_allowed = -1;
    if (args[4] != Py_None) {
        PyArrayObject *a = (PyArrayObject *)args[4];
        if (!PyArray_Check(args[4]) || (PyArray_TYPE(a) != NPY_BOOL && PyArray_TYPE(a) != NPY_UINT8) ||
            PyArray_NDIM(a) != 1 || !PyArray_IS_C_CONTIGUOUS(a)) {
            PyErr_SetString(PyExc_TypeError, "allowed must be None or a C-contiguous 1-D bool array");
            return NULL;
        }
        allowed = (const uint8_t *)PyArray_DATA(a);
        n_allowed = PyArray_DIM(a, 0);
    }
    const int64_t d = self->d, n = self->n;
    if (ef < k) ef = k;
    /* The query (unit length for cosine, as the graph's rows are); a NaN or inf anywhere makes
     * the double sum non-finite, and the general path then rejects the query by name. */
    double s = 0.0;
    for (int64_t j = 0; j < d; j++) s += (double)q[j] * q[j];
    if (!isfinite(s)) Py_RETURN_NONE;
    const double inv = (self->metric == METRIC_COSINE && s > 0.0) ? 1.0 / sqrt(s) : 1.0;

    /* A mask keeps disallowed nodes out of the results, not out of the candidates, so a filtered
     * walk queues several times more of them before it holds ef allowed ones. */
    int64_t cap = allowed ? (8 * ef > 256 ? 8 * ef : 256) : (2 * ef > 64 ? 2 * ef : 64);
    const int64_t todo_len = self->width0 > self->width_up ? self->width0 : self->width_up;
    /* Scratch: query, result heap (ef), todo list; the candidate heap is separate (it may grow). */
    const size_t fixed = (size_t)d * 4 + (size_t)ef * 8 + (size_t)todo_len * 4;
    float stack[STACK_BYTES / sizeof(float)]; /* every scratch array holds 4-byte items */
    char *mem = fixed + (size_t)cap * 8 <= sizeof stack ? (char *)stack : PyMem_RawMalloc(fixed + (size_t)cap * 8);
    if (mem == NULL) return PyErr_NoMemory();
    float *qn = (float *)mem;
    float *res_d = qn + d;
    int32_t *res_i = (int32_t *)(res_d + ef);
    int32_t *todo = res_i + ef;
    float *cand_d = (float *)(todo + todo_len);
    int32_t *cand_i = (int32_t *)(cand_d + cap);
    char *grown = NULL; /* a larger candidate heap, when the first one overflowed */
    for (int64_t j = 0; j < d; j++) qn[j] = (float)(q[j] * inv);

    const vdb_kernel_table *t = vdb_active_table();
    const int mode = self->metric == METRIC_L2 ? VDB_GRAPH_L2_F32 : VDB_GRAPH_IP_F32;
    const int32_t *row_of = self->row_of ? PyArray_DATA(self->row_of) : NULL;
    const float *row_scale = self->row_scale ? PyArray_DATA(self->row_scale) : NULL;
    int64_t rsz = -1;
    int oom = 0;
    Py_BEGIN_ALLOW_THREADS
    visited_set *v = thread_visited();
    for (;;) {
        uint16_t tag = v ? next_tag(v, n) : 0;
        if (tag == 0) {
            oom = 1;
            break;
        }
        rsz = t->hnsw_search(qn, qn, PyArray_DATA(self->rows), d, mode, PyArray_DATA(self->links0),
                             PyArray_DATA(self->counts0), self->width0, PyArray_DATA(self->up_off),
                             PyArray_DATA(self->links_up), PyArray_DATA(self->counts_up), self->width_up, self->entry,
                             self->max_level, n, ef, allowed, n_allowed, v->tags, tag, res_d, res_i, cand_d, cand_i, cap,
                             todo, row_of, row_scale);
        if (rsz >= 0) break;
        /* The candidate heap overflowed (a selective mask): again with room for every node. */
        cap = n + 1;
        free(grown);
        grown = malloc((size_t)cap * 8);
        if (grown == NULL) {
            oom = 1;
            break;
        }
        cand_d = (float *)grown;
        cand_i = (int32_t *)(cand_d + cap);
    }
    /* Keep the k best of the heap, then pop them worst first into positions filled-1 .. 0. */
    if (!oom)
        while (rsz > k) rsz = gs_max_pop(res_d, res_i, rsz);
    Py_END_ALLOW_THREADS
    free(grown);
    PyObject *result = NULL;
    if (oom) {
        PyErr_NoMemory();
        goto done;
    }
    npy_intp dims[2] = {1, (npy_intp)k};
    PyObject *out_i = PyArray_SimpleNew(2, dims, NPY_INT64);
    PyObject *out_d = PyArray_SimpleNew(2, dims, NPY_FLOAT32);
    if (out_i == NULL || out_d == NULL) {
        Py_XDECREF(out_i);
        Py_XDECREF(out_d);
        goto done;
    }
    int64_t *oi = PyArray_DATA((PyArrayObject *)out_i);
    float *od = PyArray_DATA((PyArrayObject *)out_d);
    const int64_t filled = rsz;
    /* Cosine is scored as -dot of unit vectors: 1 - dot is the distance. */
    const float shift = self->metric == METRIC_COSINE ? 1.0f : 0.0f;
    for (int64_t j = filled; j < k; j++) {
        oi[j] = -1;
        od[j] = INFINITY;
    }
    for (int64_t j = filled - 1; j >= 0; j--) {
        const int64_t row = row_of ? (int64_t)row_of[res_i[0]] : (int64_t)res_i[0];
        oi[j] = ids ? ids[row] : row;
        od[j] = res_d[0] + shift;
        rsz = gs_max_pop(res_d, res_i, rsz);
    }
    result = PyTuple_New(3);
    PyObject *count = PyLong_FromLongLong((long long)filled);
    if (result == NULL || count == NULL) {
        Py_XDECREF(result);
        Py_XDECREF(count);
        Py_DECREF(out_i);
        Py_DECREF(out_d);
        result = NULL;
        goto done;
    }
    PyTuple_SET_ITEM(result, 0, out_i);
    PyTuple_SET_ITEM(result, 1, out_d);
    PyTuple_SET_ITEM(result, 2, count);
done:
    if (mem != (char *)stack) PyMem_RawFree(mem);
    return result;
}

/* ---- exact top-k over a filter's rows ---- */

PyDoc_STRVAR(topk_at_one_doc,
             "topk_at_one(query, rows, offsets, k, metric, ids) -> (ids (1, k) int64, distances (1, k) float32, "
             "filled) | None\n\nThe k rows of rows[offsets] nearest to one query (distances_f32_at and topk in one "
             "call, as topk_f32_at), mapped through ids (an (>= len(rows),) int64 array, or None for offsets) into "
             "new result arrays. rows: (n, d) float32; offsets: (m,) int64 in [0, n); metric: 0 l2, 1 ip, 2 cosine. "
             "Returns None, without error, for a query or k it does not take (as HnswSearcher).");

static PyObject *topk_at_one(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "topk_at_one takes 6 positional arguments: query, rows, offsets, k, metric, ids");
        return NULL;
    }
    PyArrayObject *rows = (PyArrayObject *)args[1], *offs = (PyArrayObject *)args[2];
    if (!PyArray_Check(args[1]) || PyArray_TYPE(rows) != NPY_FLOAT32 || PyArray_NDIM(rows) != 2 ||
        !PyArray_IS_C_CONTIGUOUS(rows) || !PyArray_ISALIGNED(rows)) {
        PyErr_SetString(PyExc_TypeError, "rows must be a C-contiguous, aligned (n, d) float32 array");
        return NULL;
    }
    if (!PyArray_Check(args[2]) || PyArray_TYPE(offs) != NPY_INT64 || PyArray_NDIM(offs) != 1 ||
        !PyArray_IS_C_CONTIGUOUS(offs) || !PyArray_ISALIGNED(offs)) {
        PyErr_SetString(PyExc_TypeError, "offsets must be a C-contiguous (m,) int64 array");
        return NULL;
    }
    long metric = PyLong_Check(args[4]) ? PyLong_AsLong(args[4]) : -1;
    if (metric != VDB_METRIC_L2 && metric != VDB_METRIC_IP && metric != VDB_METRIC_COSINE) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "metric must be 0 (l2), 1 (ip) or 2 (cosine)");
        return NULL;
    }
    const int64_t n = PyArray_DIM(rows, 0), d = PyArray_DIM(rows, 1), m = PyArray_DIM(offs, 0);
    const int64_t *ids;
    if (ids_arg(args[5], n, &ids) < 0) return NULL;
    const int64_t *offsets = (const int64_t *)PyArray_DATA(offs);
    for (int64_t i = 0; i < m; i++)
        if (offsets[i] < 0 || offsets[i] >= n) {
            PyErr_Format(PyExc_IndexError, "offsets[%lld] = %lld is out of range for rows with %lld rows", (long long)i,
                         (long long)offsets[i], (long long)n);
            return NULL;
        }
    PyArrayObject *qa = (PyArrayObject *)args[0];
    int64_t k = small_int(args[3], MAX_K);
    if (k < 0 || !PyArray_CheckExact(args[0]) || PyArray_TYPE(qa) != NPY_FLOAT32 || !PyArray_IS_C_CONTIGUOUS(qa) ||
        !PyArray_ISALIGNED(qa) ||
        !((PyArray_NDIM(qa) == 1 && PyArray_DIM(qa, 0) == d) ||
          (PyArray_NDIM(qa) == 2 && PyArray_DIM(qa, 0) == 1 && PyArray_DIM(qa, 1) == d)))
        Py_RETURN_NONE;
    const float *q = (const float *)PyArray_DATA(qa);
    double s = 0.0;
    for (int64_t j = 0; j < d; j++) s += (double)q[j] * q[j];
    if (!isfinite(s)) Py_RETURN_NONE;

    npy_intp dims[2] = {1, (npy_intp)k};
    PyObject *out_i = PyArray_SimpleNew(2, dims, NPY_INT64);
    PyObject *out_d = PyArray_SimpleNew(2, dims, NPY_FLOAT32);
    /* A filter's few matching rows fit on the stack; a long list gets a heap buffer. */
    float small[1024];
    float *scratch = m <= 1024 ? small : PyMem_RawMalloc((size_t)m * sizeof(float));
    if (out_i == NULL || out_d == NULL || scratch == NULL) {
        Py_XDECREF(out_i);
        Py_XDECREF(out_d);
        if (scratch != NULL && scratch != small) PyMem_RawFree(scratch);
        return scratch == NULL ? PyErr_NoMemory() : NULL;
    }
    int64_t *oi = PyArray_DATA((PyArrayObject *)out_i);
    float *od = PyArray_DATA((PyArrayObject *)out_d);
    const vdb_kernel_table *t = vdb_active_table();
    int64_t filled;
    Py_BEGIN_ALLOW_THREADS
    t->distances_f32_at(q, PyArray_DATA(rows), offsets, m, d, (int)metric, scratch);
    filled = t->topk(scratch, NULL, m, k, oi, od); /* pads -1 / +inf past `filled` */
    for (int64_t j = 0; j < filled; j++) oi[j] = ids ? ids[offsets[oi[j]]] : offsets[oi[j]];
    Py_END_ALLOW_THREADS
    if (scratch != small) PyMem_RawFree(scratch);
    PyObject *count = PyLong_FromLongLong((long long)filled);
    PyObject *result = count ? PyTuple_New(3) : NULL;
    if (result == NULL) {
        Py_XDECREF(count);
        Py_DECREF(out_i);
        Py_DECREF(out_d);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, out_i);
    PyTuple_SET_ITEM(result, 1, out_d);
    PyTuple_SET_ITEM(result, 2, count);
    return result;
}

static PyMethodDef one_query_methods[] = {
    {"topk_at_one", (PyCFunction)(void (*)(void))topk_at_one, METH_FASTCALL, topk_at_one_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject HnswSearcherType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "vecdb._native.HnswSearcher",
    .tp_basicsize = sizeof(HnswSearcher),
    .tp_dealloc = (destructor)searcher_dealloc,
    .tp_vectorcall_offset = offsetof(HnswSearcher, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = searcher_doc,
    .tp_new = searcher_new,
};

/* Add HnswSearcher and topk_at_one to the module (and load numpy's C API); -1 with an exception on failure. */
int vdb_searcher_register(PyObject *module) {
    import_array1(-1);
    if (visited_init() != 0) {
        PyErr_SetString(PyExc_RuntimeError, "cannot create the thread-local visited sets");
        return -1;
    }
    if (PyType_Ready(&HnswSearcherType) < 0) return -1;
    Py_INCREF(&HnswSearcherType);
    if (PyModule_AddObject(module, "HnswSearcher", (PyObject *)&HnswSearcherType) < 0) {
        Py_DECREF(&HnswSearcherType);
        return -1;
    }
    return PyModule_AddFunctions(module, one_query_methods);
}
