"""A cache prefetch hint callable from Numba kernels.

A graph walk reads the vectors of a vertex's neighbours from scattered
addresses, with no stride for a hardware prefetcher to follow. Asking for all of them before scoring the first
lets their cache misses overlap. The hint is LLVM's ``llvm.prefetch``, emitted
by Numba's own compiler, so no compiled extension is involved.
"""

from llvmlite import binding, ir
from numba.core import cgutils, types
from numba.extending import intrinsic

# Bytes in one cache line on x86-64. A core with longer lines only receives
# redundant hints, which cost little.
CACHE_LINE_BYTES = 64
# LLVM names the intrinsic by its pointer type: typed pointers until LLVM 15.
# NOTE: only the LLVM 15 and later name has run here; the older one is untested.
_INTRINSIC = "llvm.prefetch.p0" if binding.llvm_version_info[0] >= 15 else "llvm.prefetch.p0i8"


@intrinsic
def prefetch_element(typingctx, matrix, row, column):
    """Ask the processor to load ``matrix[row, column]`` into the cache ahead of use.

    The indices are not checked. LLVM defines a prefetch as having no effect on
    the behaviour of the program, so an invalid address only wastes the hint.
    """
    if not (isinstance(matrix, types.Array) and matrix.ndim == 2):
        return None

    def codegen(context, builder, signature, args):
        matrix_type = signature.args[0]
        array = context.make_array(matrix_type)(context, builder, args[0])
        indices = [
            context.cast(builder, args[1], signature.args[1], types.intp),
            context.cast(builder, args[2], signature.args[2], types.intp),
        ]
        pointer = cgutils.get_item_pointer2(
            context,
            builder,
            array.data,
            cgutils.unpack_tuple(builder, array.shape),
            cgutils.unpack_tuple(builder, array.strides),
            matrix_type.layout,
            indices,
            wraparound=False,
            boundscheck=False,
        )
        byte_pointer = ir.IntType(8).as_pointer()
        int32 = ir.IntType(32)
        signature_ir = ir.FunctionType(ir.VoidType(), [byte_pointer, int32, int32, int32])
        function = cgutils.get_or_insert_function(builder.module, signature_ir, _INTRINSIC)
        # Arguments: address, read (0), keep in all cache levels (3), data cache (1).
        builder.call(function, [builder.bitcast(pointer, byte_pointer), int32(0), int32(3), int32(1)])
        return context.get_dummy_value()

    return types.void(matrix, row, column), codegen
