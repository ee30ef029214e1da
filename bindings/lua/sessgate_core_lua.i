/*
 * sessgate_core_lua.i - the Lua part of bindings/sessgate.i.
 *
 * The one error rule in Lua is the io.open convention: a failed call
 * returns nil, message, code (code is the sg_status number; the SG_*
 * constants of the module name them).  A call with no other result
 * returns true on success.  Integers cross as Lua integers, not floats
 * (SWIG's Lua typemaps default to lua_Number), so ids, times and
 * versions compare and print exactly.
 */
%{
#define SGW_FAIL_IF_ERROR(e) do {                       \
        if ((e)->code != SG_OK) {                       \
            lua_pushnil(L);                             \
            lua_pushstring(L, (e)->text);               \
            lua_pushinteger(L, (lua_Integer)(e)->code); \
            return 3;                                   \
        }                                               \
        if (SWIG_arg == 0) {                            \
            lua_pushboolean(L, 1);                      \
            SWIG_arg++;                                 \
        }                                               \
    } while (0)

#define SGW_STATUS_RESULT() ((void)0)

#define SGW_APPEND_OWNED(p, desc) do {                  \
        SWIG_NewPointerObj(L, (p), (desc), 1);          \
        SWIG_arg++;                                     \
    } while (0)

#define SGW_APPEND_SIZE(n) do {                         \
        lua_pushinteger(L, (lua_Integer)(n));           \
        SWIG_arg++;                                     \
    } while (0)

#define SGW_APPEND_STRING(t) do {                       \
        lua_pushstring(L, (t));                         \
        SWIG_arg++;                                     \
    } while (0)

#define SGW_APPEND_LIST(l) do {                                         \
        size_t sgw_i, sgw_n = sg_list_count(l);                         \
        lua_createtable(L, sgw_n > INT_MAX ? 0 : (int)sgw_n, 0);        \
        for (sgw_i = 0; sgw_i < sgw_n; sgw_i++) {                       \
            lua_pushstring(L, sg_list_id(l, sgw_i));                    \
            lua_rawseti(L, -2, (lua_Integer)sgw_i + 1);                 \
        }                                                               \
        SWIG_arg++;                                                     \
    } while (0)
#include <limits.h>
%}

/* Integers as Lua integers.  Input: an integral number (a float like 5.0
 * is accepted, 5.5 raises). */
%typemap(in, checkfn="lua_isnumber") int64_t, uint64_t, int, unsigned, size_t
%{ $1 = ($type)luaL_checkinteger(L, $input); %}
%typemap(out) int64_t, uint64_t, int, unsigned, size_t
%{ lua_pushinteger(L, (lua_Integer)$1); SWIG_arg++; %}
