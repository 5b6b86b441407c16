/*
 * offsets.c -- emberscope's layout probe.
 *
 * Compiled once per CPython version by gen.sh, against that version's own
 * headers, with -DPy_BUILD_CORE (x86_64, default GIL build).  It links nothing
 * from libpython: every value is an offsetof/sizeof, an enum constant or a
 * bit position found by setting a bitfield in a zeroed local struct.
 *
 * Output, one fact per line:
 *     <key> <value>                a Layout field (absent key = field absent)
 *     dbg <key> <path> <pos>       3.13+: _Py_DebugOffsets has, at byte <pos>,
 *                                  a uint64 (named <path> there) that must equal
 *                                  Layout field <key>
 * Keys are the Rust field names of emberscope_sampler::layout::Layout.
 */
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#if PY_VERSION_HEX < 0x03090000
#  include <frameobject.h>
#  include "internal/pycore_pystate.h"
#elif PY_VERSION_HEX < 0x030B0000
#  include <frameobject.h>
#  include "internal/pycore_runtime.h"
#  include "internal/pycore_interp.h"
#elif PY_VERSION_HEX < 0x030E0000
#  include "internal/pycore_runtime.h"
#  include "internal/pycore_interp.h"
#  include "internal/pycore_frame.h"
#else
#  include "internal/pycore_runtime.h"
#  include "internal/pycore_interp.h"
#  include "internal/pycore_interpframe_structs.h"
#  include "internal/pycore_frame.h"
#  include "internal/pycore_stackref.h"
#  include "internal/pycore_debug_offsets.h"
#endif

#if !defined(__x86_64__)
#  error "emberscope layouts are generated for x86_64 only"
#endif
#ifdef Py_GIL_DISABLED
#  error "free-threaded builds are not supported"
#endif

#define AT_LEAST(hex) (PY_VERSION_HEX >= (hex))

static void put(const char *key, long long value) { printf("%s %lld\n", key, value); }
#define OFF(key, T, member) put(key, (long long)offsetof(T, member))
#define SIZE(key, T) put(key, (long long)sizeof(T))

/* Bit index of the lowest set bit of the 32-bit word at `p`, -1 if none. */
static int low_bit(const void *p)
{
    uint32_t w;
    memcpy(&w, p, sizeof w);
    for (int i = 0; i < 32; i++)
        if (w & (1u << i))
            return i;
    return -1;
}

/* Number of set bits of the 32-bit word at `p`. */
static int bit_count(const void *p)
{
    uint32_t w;
    int n = 0;
    memcpy(&w, p, sizeof w);
    for (int i = 0; i < 32; i++)
        if (w & (1u << i))
            n++;
    return n;
}

#if AT_LEAST(0x030D0000)
#  define DBG(key, path) \
    printf("dbg %s %s %lld\n", key, #path, (long long)offsetof(_Py_DebugOffsets, path))
#endif

int main(void)
{
    put("version_major", PY_MAJOR_VERSION);
    put("version_minor", PY_MINOR_VERSION);
    put("version_micro", PY_MICRO_VERSION);
    put("version_hex", PY_VERSION_HEX);

    /* ---- _PyRuntimeState ---- */
    SIZE("runtime_sizeof", _PyRuntimeState);
#if AT_LEAST(0x030D0000)
    OFF("runtime_debug_offsets", _PyRuntimeState, debug_offsets);
#endif
#if AT_LEAST(0x03090000)
    OFF("runtime_finalizing", _PyRuntimeState, _finalizing);
#else
    OFF("runtime_finalizing", _PyRuntimeState, finalizing);
#endif
    OFF("runtime_interpreters_head", _PyRuntimeState, interpreters.head);
    OFF("runtime_interpreters_main", _PyRuntimeState, interpreters.main);
    OFF("runtime_main_thread", _PyRuntimeState, main_thread);
#if AT_LEAST(0x030B0000)
    OFF("runtime_main_interpreter", _PyRuntimeState, _main_interpreter);
#endif
#if !AT_LEAST(0x030C0000)
    OFF("runtime_gilstate_tstate_current", _PyRuntimeState, gilstate.tstate_current);
    OFF("runtime_gil", _PyRuntimeState, ceval.gil);
#endif

    /* ---- PyInterpreterState ---- */
    SIZE("interp_sizeof", PyInterpreterState);
    OFF("interp_next", PyInterpreterState, next);
    OFF("interp_id", PyInterpreterState, id);
#if AT_LEAST(0x03090000)
    OFF("interp_runtime", PyInterpreterState, runtime);
#endif
#if AT_LEAST(0x030B0000)
    OFF("interp_threads_head", PyInterpreterState, threads.head);
#else
    OFF("interp_threads_head", PyInterpreterState, tstate_head);
#endif
#if AT_LEAST(0x030D0000)
    OFF("interp_threads_main", PyInterpreterState, threads.main);
#endif
#if AT_LEAST(0x030C0000)
    OFF("interp_ceval_gil", PyInterpreterState, ceval.gil);
    OFF("interp_gil", PyInterpreterState, _gil);
    OFF("interp_gil_locked", PyInterpreterState, _gil.locked);
    OFF("interp_gil_last_holder", PyInterpreterState, _gil.last_holder);
#endif
#if AT_LEAST(0x030E0000)
    /* bumped by every code_dealloc: cached code objects stay valid while it
       does not change */
    OFF("interp_code_object_generation", PyInterpreterState, _code_object_generation);
#endif

    /* ---- struct _gil_runtime_state ---- */
    SIZE("gil_sizeof", struct _gil_runtime_state);
    OFF("gil_last_holder", struct _gil_runtime_state, last_holder);
    OFF("gil_locked", struct _gil_runtime_state, locked);
    SIZE("gil_locked_sizeof", ((struct _gil_runtime_state *)0)->locked);

    /* ---- PyThreadState ---- */
    SIZE("tstate_sizeof", PyThreadState);
    OFF("tstate_prev", PyThreadState, prev);
    OFF("tstate_next", PyThreadState, next);
    OFF("tstate_interp", PyThreadState, interp);
#if AT_LEAST(0x030D0000)
    OFF("tstate_current_frame", PyThreadState, current_frame);
#elif AT_LEAST(0x030A0000)
    OFF("tstate_cframe", PyThreadState, cframe);
    OFF("tstate_root_cframe", PyThreadState, root_cframe);
#endif
#if !AT_LEAST(0x030B0000)
    OFF("tstate_frame", PyThreadState, frame);
#endif
    OFF("tstate_thread_id", PyThreadState, thread_id);
#if AT_LEAST(0x030B0000)
    OFF("tstate_native_thread_id", PyThreadState, native_thread_id);
    OFF("tstate_datastack_chunk", PyThreadState, datastack_chunk);
    OFF("tstate_datastack_top", PyThreadState, datastack_top);
    OFF("tstate_datastack_limit", PyThreadState, datastack_limit);
#endif
    OFF("tstate_exc_info", PyThreadState, exc_info);
    OFF("tstate_exc_state", PyThreadState, exc_state);
#if AT_LEAST(0x030C0000)
    OFF("tstate_current_exception", PyThreadState, current_exception);
#else
    OFF("tstate_curexc_type", PyThreadState, curexc_type);
    OFF("tstate_curexc_value", PyThreadState, curexc_value);
    OFF("tstate_curexc_traceback", PyThreadState, curexc_traceback);
#endif
#if AT_LEAST(0x030C0000)
    OFF("tstate_status", PyThreadState, _status);
#endif
#if AT_LEAST(0x030D0000)
    OFF("tstate_state", PyThreadState, state);
#endif
#if AT_LEAST(0x030E0000)
    OFF("tstate_holds_gil", PyThreadState, holds_gil);
#elif AT_LEAST(0x030D0000)
    {
        /* 3.13 keeps holds_gil as a bit of the _status word. */
        static PyThreadState t;
        memset(&t, 0, sizeof t);
        t._status.holds_gil = 1;
        put("tstate_status_holds_gil_bit",
            low_bit((const char *)&t + offsetof(PyThreadState, _status)));
    }
#endif
    OFF("tstate_id", PyThreadState, id);

    /* ---- _PyCFrame (3.11, 3.12: where the current frame hangs) ---- */
#if AT_LEAST(0x030B0000) && !AT_LEAST(0x030D0000)
    SIZE("cframe_sizeof", _PyCFrame);
    OFF("cframe_current_frame", _PyCFrame, current_frame);
    OFF("cframe_previous", _PyCFrame, previous);
#endif

    /* ---- _PyErr_StackItem ---- */
    SIZE("errstack_sizeof", _PyErr_StackItem);
#if !AT_LEAST(0x030B0000)
    OFF("errstack_exc_type", _PyErr_StackItem, exc_type);
    OFF("errstack_exc_traceback", _PyErr_StackItem, exc_traceback);
#endif
    OFF("errstack_exc_value", _PyErr_StackItem, exc_value);
    OFF("errstack_previous_item", _PyErr_StackItem, previous_item);

    /* ---- PyFrameObject ---- */
    SIZE("frameobj_sizeof", PyFrameObject);
    OFF("frameobj_f_back", PyFrameObject, f_back);
#if AT_LEAST(0x030B0000)
    OFF("frameobj_f_frame", PyFrameObject, f_frame);
#else
    OFF("frameobj_f_code", PyFrameObject, f_code);
    OFF("frameobj_f_lasti", PyFrameObject, f_lasti);
    OFF("frameobj_f_gen", PyFrameObject, f_gen);
#endif
    OFF("frameobj_f_lineno", PyFrameObject, f_lineno);
    /* Whether a frame object has finished (returned/raised/cleared): a walk
     * that meets one was torn (the thread unwound under it) and is retried. */
#if !AT_LEAST(0x030A0000)
    OFF("frameobj_f_stacktop", PyFrameObject, f_stacktop);
    OFF("frameobj_f_executing", PyFrameObject, f_executing);
#elif !AT_LEAST(0x030B0000)
    OFF("frameobj_f_state", PyFrameObject, f_state);
    put("frame_state_returned", FRAME_RETURNED);
    put("frame_state_raised", FRAME_RAISED);
    put("frame_state_cleared", FRAME_CLEARED);
#endif

    /* ---- _PyInterpreterFrame (3.11+) ---- */
#if AT_LEAST(0x030B0000)
    SIZE("iframe_sizeof", _PyInterpreterFrame);
    OFF("iframe_previous", _PyInterpreterFrame, previous);
#  if AT_LEAST(0x030D0000)
    OFF("iframe_f_executable", _PyInterpreterFrame, f_executable);
    OFF("iframe_instr_ptr", _PyInterpreterFrame, instr_ptr);
#  else
    OFF("iframe_f_code", _PyInterpreterFrame, f_code);
    OFF("iframe_prev_instr", _PyInterpreterFrame, prev_instr);
#  endif
#  if AT_LEAST(0x030C0000)
    OFF("iframe_f_funcobj", _PyInterpreterFrame, f_funcobj);
#  else
    OFF("iframe_f_func", _PyInterpreterFrame, f_func);
#  endif
    OFF("iframe_owner", _PyInterpreterFrame, owner);
    OFF("iframe_localsplus", _PyInterpreterFrame, localsplus);
#  if AT_LEAST(0x030E0000)
    OFF("iframe_stackpointer", _PyInterpreterFrame, stackpointer);
#  else
    OFF("iframe_stacktop", _PyInterpreterFrame, stacktop);
#  endif
    put("owner_thread", FRAME_OWNED_BY_THREAD);
    put("owner_generator", FRAME_OWNED_BY_GENERATOR);
    put("owner_frame_object", FRAME_OWNED_BY_FRAME_OBJECT);
#  if AT_LEAST(0x030C0000)
    put("owner_cstack", FRAME_OWNED_BY_CSTACK);
#  endif
#  if AT_LEAST(0x030E0000)
    put("owner_interpreter", FRAME_OWNED_BY_INTERPRETER);
    put("stackref_tag_bits", Py_TAG_BITS);
    put("stackref_null_bits", PyStackRef_NULL_BITS);
#  endif

    /* ---- _PyStackChunk (the per-thread frame stack) ---- */
    OFF("stackchunk_previous", _PyStackChunk, previous);
    OFF("stackchunk_size", _PyStackChunk, size);
    OFF("stackchunk_top", _PyStackChunk, top);
    OFF("stackchunk_data", _PyStackChunk, data);
#endif

    /* ---- PyCodeObject ---- */
    SIZE("code_sizeof", PyCodeObject);
#if AT_LEAST(0x030B0000)
    OFF("code_ob_size", PyCodeObject, ob_base.ob_size);
#endif
    OFF("code_co_flags", PyCodeObject, co_flags);
    OFF("code_co_firstlineno", PyCodeObject, co_firstlineno);
    OFF("code_co_filename", PyCodeObject, co_filename);
    OFF("code_co_name", PyCodeObject, co_name);
#if AT_LEAST(0x030B0000)
    OFF("code_co_qualname", PyCodeObject, co_qualname);
    OFF("code_co_linetable", PyCodeObject, co_linetable);
    OFF("code_co_firsttraceable", PyCodeObject, _co_firsttraceable);
    OFF("code_co_code_adaptive", PyCodeObject, co_code_adaptive);
#elif AT_LEAST(0x030A0000)
    OFF("code_co_linetable", PyCodeObject, co_linetable);
    OFF("code_co_code", PyCodeObject, co_code);
#else
    OFF("code_co_lnotab", PyCodeObject, co_lnotab);
    OFF("code_co_code", PyCodeObject, co_code);
#endif

    /* ---- PyObject / PyVarObject / PyTypeObject ---- */
    SIZE("object_sizeof", PyObject);
    OFF("object_ob_type", PyObject, ob_type);
    OFF("varobject_ob_size", PyVarObject, ob_size);
    OFF("type_tp_name", PyTypeObject, tp_name);
    OFF("type_tp_flags", PyTypeObject, tp_flags);
    OFF("type_tp_new", PyTypeObject, tp_new);

    /* ---- str ---- */
    SIZE("ascii_sizeof", PyASCIIObject);
    SIZE("compact_sizeof", PyCompactUnicodeObject);
    SIZE("unicode_sizeof", PyUnicodeObject);
    OFF("unicode_length", PyASCIIObject, length);
    OFF("unicode_state", PyASCIIObject, state);
    OFF("unicode_data", PyUnicodeObject, data);
    {
        static PyASCIIObject o;
        const char *state = (const char *)&o + offsetof(PyASCIIObject, state);
        memset(&o, 0, sizeof o);
        o.state.kind = 7;
        put("unicode_state_kind_shift", low_bit(state));
        put("unicode_state_kind_bits", bit_count(state));
        memset(&o, 0, sizeof o);
        o.state.compact = 1;
        put("unicode_state_compact_bit", low_bit(state));
        memset(&o, 0, sizeof o);
        o.state.ascii = 1;
        put("unicode_state_ascii_bit", low_bit(state));
#if !AT_LEAST(0x030C0000)
        memset(&o, 0, sizeof o);
        o.state.ready = 1;
        put("unicode_state_ready_bit", low_bit(state));
#endif
    }

    /* ---- bytes ---- */
    OFF("bytes_ob_size", PyBytesObject, ob_base.ob_size);
    OFF("bytes_ob_sval", PyBytesObject, ob_sval);

    /* ---- _Py_DebugOffsets (3.13+) ---- */
#if AT_LEAST(0x030D0000)
    SIZE("dbg_sizeof", _Py_DebugOffsets);
    OFF("dbg_cookie", _Py_DebugOffsets, cookie);
    OFF("dbg_version", _Py_DebugOffsets, version);
    OFF("dbg_free_threaded", _Py_DebugOffsets, free_threaded);
    DBG("runtime_sizeof", runtime_state.size);
    DBG("runtime_finalizing", runtime_state.finalizing);
    DBG("runtime_interpreters_head", runtime_state.interpreters_head);
    DBG("interp_sizeof", interpreter_state.size);
    DBG("interp_id", interpreter_state.id);
    DBG("interp_next", interpreter_state.next);
    DBG("interp_threads_head", interpreter_state.threads_head);
#  if AT_LEAST(0x030E0000)
    DBG("interp_threads_main", interpreter_state.threads_main);
#  endif
    DBG("interp_ceval_gil", interpreter_state.ceval_gil);
    DBG("interp_gil", interpreter_state.gil_runtime_state);
    DBG("interp_gil_locked", interpreter_state.gil_runtime_state_locked);
    DBG("interp_gil_last_holder", interpreter_state.gil_runtime_state_holder);
#  if AT_LEAST(0x030E0000)
    DBG("interp_code_object_generation", interpreter_state.code_object_generation);
#  endif
    DBG("tstate_sizeof", thread_state.size);
    DBG("tstate_prev", thread_state.prev);
    DBG("tstate_next", thread_state.next);
    DBG("tstate_interp", thread_state.interp);
    DBG("tstate_current_frame", thread_state.current_frame);
    DBG("tstate_thread_id", thread_state.thread_id);
    DBG("tstate_native_thread_id", thread_state.native_thread_id);
    DBG("tstate_datastack_chunk", thread_state.datastack_chunk);
    DBG("tstate_status", thread_state.status);
    DBG("iframe_sizeof", interpreter_frame.size);
    DBG("iframe_previous", interpreter_frame.previous);
    DBG("iframe_f_executable", interpreter_frame.executable);
    DBG("iframe_instr_ptr", interpreter_frame.instr_ptr);
    DBG("iframe_localsplus", interpreter_frame.localsplus);
    DBG("iframe_owner", interpreter_frame.owner);
#  if AT_LEAST(0x030E0000)
    DBG("iframe_stackpointer", interpreter_frame.stackpointer);
#  endif
    DBG("code_sizeof", code_object.size);
    DBG("code_co_filename", code_object.filename);
    DBG("code_co_name", code_object.name);
    DBG("code_co_qualname", code_object.qualname);
    DBG("code_co_linetable", code_object.linetable);
    DBG("code_co_firstlineno", code_object.firstlineno);
    DBG("code_co_code_adaptive", code_object.co_code_adaptive);
    DBG("object_sizeof", pyobject.size);
    DBG("object_ob_type", pyobject.ob_type);
    DBG("type_tp_name", type_object.tp_name);
    DBG("type_tp_flags", type_object.tp_flags);
    DBG("bytes_ob_size", bytes_object.ob_size);
    DBG("bytes_ob_sval", bytes_object.ob_sval);
    DBG("unicode_sizeof", unicode_object.size);
    DBG("unicode_state", unicode_object.state);
    DBG("unicode_length", unicode_object.length);
    DBG("ascii_sizeof", unicode_object.asciiobject_size);
#endif
    return 0;
}
