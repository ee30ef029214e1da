/*
 * sessgate.i - the one SWIG interface over libsessgate, for every language.
 *
 * It builds a raw module `sessgate_core` (Python: sessgate/sessgate_core.py
 * over _sessgate_core.so; Lua: sessgate_core.so).  Users never import it:
 * the hand-written layers (python/sessgate/__init__.py, lua/sessgate.lua)
 * give each language its idiom.  The raw module is deliberately flat and
 * C-shaped, but already safe to call:
 *
 *  - `sg_error *err` never crosses: every call gets a fresh local report,
 *    and one uniform rule turns a report with code != SG_OK into the
 *    language's error (Python: the sessgate.Error subclass for the code;
 *    Lua: the three results nil, message, code).  The rule lives in the
 *    per-language part as SGW_FAIL_IF_ERROR; this file only applies it.
 *  - `sg_x **out` parameters become owned return values: a session or a
 *    store is freed by the garbage collector (sg_session_free /
 *    sg_store_close), an id list becomes a native list of strings.
 *  - `size_t *out` results become return values; an sg_status return value
 *    itself is dropped (success is the absence of an error).
 *  - returned strings that the C API documents as "New" are %newobject and
 *    freed after the copy into the language.
 *  - what does not cross is %ignored: the clock hook, sg_error, the
 *    callback-based sg_session_update (each layer builds it from
 *    sg_store_begin/get/save/sg_store_end), borrowed pointers into the store.
 *
 * Python: every C call runs with the GIL released (threads="1"), since a
 * call may wait up to the lock timeout for another process; the layer
 * serialises the calls on one store handle.  Lua ignores this.
 *
 * Names lose their "sg_" prefix (sg_session_get -> session_get); constants
 * keep theirs (SG_ECONFLICT).  The per-language part supplies the few C
 * macros the typemaps below use (see python/sessgate_core_python.i and
 * lua/sessgate_core_lua.i):
 *   SGW_FAIL_IF_ERROR(e)        raise / return the error in *e, if any
 *   SGW_STATUS_RESULT()         the result of an sg_status function
 *   SGW_APPEND_OWNED(p, desc)   add a new, owned pointer to the results
 *   SGW_APPEND_SIZE(n)          add a size_t to the results
 *   SGW_APPEND_LIST(l)          add the ids of an sg_list as a native list
 */
%module(package="sessgate", threads="1") sessgate_core

%{
#include <stdlib.h>
#include "sessgate.h"
%}

%include <stdint.i>

#ifdef SWIGPYTHON
%include "python/sessgate_core_python.i"
#endif
#ifdef SWIGLUA
%include "lua/sessgate_core_lua.i"
#endif

%rename("%(strip:[sg_])s") "";

/* ------------------------------------------------------------ errors */

/* The hidden error report: fresh per call, checked after the call. */
%typemap(in, numinputs=0) sg_error *err (sg_error sgerr) {
    sg_error_clear(&sgerr);
    $1 = &sgerr;
}
%typemap(argout) sg_error *err {
    SGW_FAIL_IF_ERROR($1);
}
%typemap(out) sg_status {
    (void)$1;                   /* the error report says it all */
    SGW_STATUS_RESULT();
}

/* ------------------------------------------------- owned out-parameters */

%define SG_OWNED_OUT(TYPE)
%typemap(in, numinputs=0) TYPE **out (TYPE *owned = NULL) {
    $1 = &owned;
}
%typemap(argout) TYPE **out {
    /* NULL on error: the error typemap (last argument) reports it. */
    if (*$1) {
        SGW_APPEND_OWNED(*$1, $*descriptor);
    }
}
%enddef
SG_OWNED_OUT(sg_store)
SG_OWNED_OUT(sg_session)

%typemap(in, numinputs=0) size_t *out (size_t n = 0), size_t *removed (size_t n = 0) {
    $1 = &n;
}
%typemap(argout) size_t *out, size_t *removed {
    SGW_APPEND_SIZE(*$1);
}

/* A New string out-parameter (sg_session_flash_pop) becomes a native
 * string; the C string is freed here. */
%typemap(in, numinputs=0) char **json_out (char *owned = NULL) {
    $1 = &owned;
}
%typemap(argout) char **json_out {
    if (*$1) {
        SGW_APPEND_STRING(*$1);
        free(*$1);
        *$1 = NULL;
    }
}

/* An id snapshot becomes a native list at once; the sg_list is freed here
 * (it is New, owned by this wrapper until then). */
%typemap(in, numinputs=0) sg_list **out (sg_list *owned = NULL) {
    $1 = &owned;
}
%typemap(argout) sg_list **out {
    if (*$1) {
        SGW_APPEND_LIST(*$1);
        sg_list_free(*$1);
        *$1 = NULL;
    }
}

/* ------------------------------------------------------------ strings */

%newobject sg_session_data_json;
%newobject sg_session_to_json;
%typemap(newfree) char * "free($1);";

/* ------------------------------------------------------ opaque handles */

/* SWIG sees empty structs so that it makes a class with a destructor; the
 * C compiler only ever sees the opaque typedefs of sessgate.h. */
%nodefaultctor sg_store;
%nodefaultctor sg_session;
struct sg_store {};
struct sg_session {};
%extend sg_store {
    ~sg_store() { sg_store_close($self); }
}
%extend sg_session {
    ~sg_session() { sg_session_free($self); }
}

/* Explicit close: the wrapper stops owning the handle (DISOWN), so the
 * garbage collector will not close it a second time. */
%{
static void sgw_store_close(sg_store *closing) { sg_store_close(closing); }
%}
%apply SWIGTYPE *DISOWN { sg_store *closing };
%rename(store_close) sgw_store_close;
void sgw_store_close(sg_store *closing);

/* -------------------------------------------------- what does not cross */

%ignore sg_store_close;          /* replaced by store_close above */
%ignore sg_session_free;         /* the destructor */
%ignore sg_list_free;            /* lists are converted at once */
%ignore sg_list_count;
%ignore sg_list_id;
%ignore sg_list;
%ignore sg_error;                /* hidden by the typemaps */
%ignore sg_error_clear;
%ignore SG_ERROR_TEXT;
%ignore sg_clock_fn;             /* clocks are for C tests and embedders */
%ignore sg_options::clock;
%ignore sg_options::clock_arg;
%ignore sg_store_options;        /* borrowed pointer into the store */
%ignore sg_update_fn;            /* C callback; layers use begin/end */
%ignore sg_session_update;
%ignore sg_store_stats;          /* admin: sessgatectl stats */
%ignore sg_stats;
%ignore sg_store_check;          /* admin: sessgatectl check */
%ignore sg_check_report;
%ignore sg_store_compact;        /* admin: sessgatectl compact */
%ignore sg_compact_report;
%ignore sg_store_checkpoint;     /* admin: sessgatectl checkpoint */
%ignore sg_store_recoveries;
%ignore sg_session_import;       /* admin: sessgatectl import */
%ignore sg_each_fn;              /* C callback; layers use list + get */
%ignore sg_store_each;
%ignore sg_option_find;          /* layers walk option_at */
%ignore sg_options_set;          /* layers set the fields by name */

/* The store-option table is the library's static data: read-only rows
 * the layers read to document and check their keywords. */
%immutable sg_option_info::name;
%immutable sg_option_info::flag;
%immutable sg_option_info::arg;
%immutable sg_option_info::min;
%immutable sg_option_info::max;
%immutable sg_option_info::def_value;
%immutable sg_option_info::def_text;
%immutable sg_option_info::help;
%immutable sg_option_info::faces;

%include "sessgate.h"

#ifdef SWIGPYTHON
/* Python: the package imports this module only (its classes register the
 * destructors of the handles), and calls the flat C functions with one
 * Python call less than the def wrappers SWIG writes above: rebound here
 * to the extension's own functions. */
%pythoncode %{
for _name, _value in list(vars(_sessgate_core).items()):
    if not _name.startswith("_") and _name not in ("this", "thisown"):
        globals()[_name] = _value
del _name, _value
%}
#endif
