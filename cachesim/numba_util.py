"""Numba helpers that every kernel layer shares (bottom layer: imports nothing from cachesim)."""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload


def prefetch(arr, flat_index):
    """Hint the CPU to bring element `flat_index` of the C-contiguous array `arr` into its caches
    (flat: row-major over all dimensions). A hint only: it reads and changes no value, so an
    index past the end is harmless; kernels use it to hide the latency of random state reads a
    few accesses ahead. In plain Python (NUMBA_DISABLE_JIT=1) it does nothing."""


@intrinsic
def _llvm_prefetch(typingctx, arr, flat_index):
    """llvm.prefetch(address of arr's element flat_index, read, high locality, data cache)."""
    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
            "llvm.prefetch.p0")
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), i8p)
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.void(arr, flat_index), codegen


@overload(prefetch)
def _prefetch_jitted(arr, flat_index):
    return lambda arr, flat_index: _llvm_prefetch(arr, flat_index)


def borrow(value):
    """The same arrays without their reference counts, for a kernel's hot loop: arrays (alone or
    inside tuples, nested or not) come back as views whose meminfo is null, so binding them to a
    variable costs no atomic increment. numba counts a reference each time an inlined function
    binds an array taken from a tuple, and its pruning pass misses the pairs split across
    branches: in a request loop that is one atomic pair per access per piece, 5-12x the
    kernel's time. A borrowed view is valid only while the caller holds the arrays (a kernel's
    arguments are held for the whole call): never return or store one. In plain Python
    (NUMBA_DISABLE_JIT=1) it returns `value` itself."""
    return value


def _borrowed(context, builder, typ, value):
    if isinstance(typ, types.Array):
        ary = context.make_array(typ)(context, builder, value=value)
        ary.meminfo = cgutils.get_null_value(ary.meminfo.type)
        ary.parent = cgutils.get_null_value(ary.parent.type)
        return ary._getvalue()
    if isinstance(typ, types.BaseTuple):
        items = [_borrowed(context, builder, t, builder.extract_value(value, i))
                 for i, t in enumerate(typ)]
        return context.make_tuple(builder, typ, items)
    return value


@intrinsic
def _borrow(typingctx, value):
    def codegen(context, builder, signature, args):
        return _borrowed(context, builder, signature.args[0], args[0])
    return value(value), codegen


@overload(borrow)
def _borrow_jitted(value):
    return lambda value: _borrow(value)
