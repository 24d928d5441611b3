"""User errors of the back end: each a MyelinError naming the tensor, node or
parameter and the bytes required and available."""

import pytest

from compiler.backend.alloc import AllocError
from compiler.backend.compile import compile_kernel
from compiler.errors import CompileError, ShapeError, UnsupportedError
from hw.errors import MyelinError


def test_errors_are_myelin_errors():
    assert issubclass(AllocError, CompileError) and issubclass(CompileError, MyelinError)


@pytest.mark.parametrize(
    "kernel,params,word",
    [
        ("gemm", dict(m=0), "dimension M"),
        ("gemm", dict(k=-3), "dimension K"),
        ("mlp", dict(hidden=0), "hidden must be a positive integer"),
        ("attention", dict(seq=0), "seq must be a positive integer"),
        ("conv2d", dict(h=2, kh=5, pad=0), "has no output"),
    ],
)
def test_untileable_shapes(kernel, params, word, archs):
    with pytest.raises(ShapeError, match=word):
        compile_kernel(kernel, archs["tiny"], **params)


def test_output_row_wider_than_ldc(archs):
    arch = archs["tiny"].replace(mesh_cols=1, mesh_rows=1, dram_bytes=2**24)
    with pytest.raises(ShapeError, match="at most 65535"):
        compile_kernel("gemm", arch, m=4, k=16, n=70000)


def test_tensor_too_big_for_dram(archs):
    with pytest.raises(AllocError) as exc:
        compile_kernel("gemm", archs["tiny"], m=64, k=32768, n=64)
    msg = str(exc.value)
    assert "tensor 'A' needs 2" in msg and "bytes of DRAM but only 1048576 of 1048576 bytes" in msg


def test_tensor_too_big_for_sram_even_streaming(archs):
    with pytest.raises(AllocError) as exc:
        compile_kernel("gemm", archs["tiny"], m=8192, k=64, n=64)
    msg = str(exc.value)
    assert "tensor 'C'" in msg and "needs 131072 bytes" in msg and "32768 bytes" in msg


def test_weights_too_big_for_sram(archs):
    # W1 and W2 are streamed by whole-K tiles; W2's two 2048 x 16 slots still do not fit
    with pytest.raises(AllocError) as exc:
        compile_kernel("mlp", archs["tiny"], m=16, d=128, hidden=2048, n=16)
    msg = str(exc.value)
    assert "tensor 'W2 stream slots'" in msg and "65536 bytes of SRAM" in msg
    assert "of 32768 bytes" in msg


def test_transpose_needs_c_multiple_of_r(archs):
    arch = archs["small"].replace(mac_rows=8, mac_cols=4)
    with pytest.raises(UnsupportedError, match="8 x 4"):
        compile_kernel("attention", arch)


def test_unknown_kernel_and_parameter(archs):
    with pytest.raises(CompileError, match="unknown kernel 'fft'"):
        compile_kernel("fft", archs["tiny"])
    with pytest.raises(CompileError, match="has no parameter 'q'"):
        compile_kernel("gemm", archs["tiny"], q=3)


def test_group_buffer_error_names_the_fullest_pe(archs):
    """A buffer shared by a rectangle of PEs that does not fit names the PE of the
    rectangle whose live buffers leave the least room, and lists only that PE's."""
    from compiler.backend.alloc import SramAllocator, SramBuffer

    arch = archs["tiny"]
    alloc = SramAllocator(arch)
    size = arch.sram_bytes
    for x in range(2):
        for y in range(2):
            n = 3 * size // 4 if (x, y) == (1, 0) else size // 8
            alloc.add(SramBuffer(f"s{x}{y}", f"scores{x}{y}", n, (x, y, x, y)))
    alloc.add(SramBuffer("g", "shared", size // 2, (0, 0, 1, 1)))
    with pytest.raises(AllocError) as exc:
        alloc.place()
    msg = str(exc.value)
    want = f"'shared' (g) needs {size // 2} bytes of SRAM on PE (1, 0) but only {size // 4} of"
    assert want in msg
    assert f"live there: scores10 {3 * size // 4})" in msg


def test_attention_too_long_for_sram_names_the_ring(archs):
    """seq 768 d 64 on small: K^T and V (48 KiB each) and two m tiles of scores do not
    fit 128 KiB; the error is the ring's (the mapping that needs the least), naming
    the tensor, the bytes and what is live beside it."""
    with pytest.raises(AllocError) as exc:
        compile_kernel("attention", archs["small"], seq=768, d=64)
    msg = str(exc.value)
    assert "bytes of SRAM on PE" in msg and "of 131072 bytes are available" in msg
    assert "K^T" in msg and "scores" in msg and "ring of 2 m tiles" in msg


def test_attention_program_too_long_for_imem(archs):
    """tiny seq 192 d 32: the ring fits SRAM but its unrolled program outgrows the
    512-word instruction memory even with K^T in 2 parts, and the sequential head does
    not fit SRAM."""
    with pytest.raises(AllocError, match=r"outgrows the instruction memory \(512 words\)"):
        compile_kernel("attention", archs["tiny"], seq=192, d=32)


def test_sram_error_says_when_the_free_bytes_are_in_pieces(archs):
    """Enough free bytes in total but no piece large enough: the error says so and
    gives the largest piece (first-fit placement of buffers with other live ranges
    can leave the free space split)."""
    from compiler.backend.alloc import SramAllocator, SramBuffer

    arch = archs["tiny"]  # 32 KiB
    alloc = SramAllocator(arch)
    pe = (0, 0, 0, 0)
    rivals = [
        SramBuffer("a", "left", 12288, pe, offset=0),
        SramBuffer("b", "middle", 10240, pe, offset=16384),
        SramBuffer("c", "top", 3072, pe, offset=29696),
    ]
    with pytest.raises(AllocError) as exc:
        alloc._fail(SramBuffer("q", "Q", 6144, pe), rivals)
    msg = str(exc.value)
    assert "needs 6144 bytes" in msg and "only 7168 of 32768 bytes" in msg
    assert "in pieces" in msg and "the largest 4096 bytes" in msg
