"""Write the seed inputs of tests/fuzz/corpus in the layout fuzz_decode.c reads.

Run it again after changing that layout: ``python tests/fuzz/make_corpus.py``.
"""

import pathlib

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"
TYPES = ("u16", "s16", "u32", "s32", "u64", "s64", "f32", "f64", "bitfield16", "bitfield32",
         "enum16", "acc32", "acc64", "sunssf", "str")
ORDERS = ("ABCD", "BADC", "CDAB", "DCBA")
SCALES = (1.0, 0.1, 0.001, 10.0, -1.0, 1e308, 1e-300, 0.0)


def point(type_name, order, index, length, block=0, sf_index=-1, no_default=False,
          sentinel_count=0, scale=1.0):
    return bytes([TYPES.index(type_name), ORDERS.index(order), index, length, block,
                  sf_index + 1, int(no_default), 0, sentinel_count, SCALES.index(scale)])


def seed(points, words, block_status=(0,)):
    header = bytes([len(points) - 1, len(words), len(block_status) - 1])
    body = b"".join(points) + bytes(block_status)
    return header + body + b"".join(word.to_bytes(2, "big") for word in words)


SEEDS = {
    "u16_scaled": seed([point("u16", "ABCD", 0, 1, scale=0.1)], [850]),
    "s32_milli": seed([point("s32", "ABCD", 0, 2, scale=0.001),
                       point("s32", "ABCD", 2, 2, scale=0.001)],
                      [0x0001, 0xD4C0, 0xFFFF, 0xF448]),
    "sunssf": seed([point("u16", "ABCD", 0, 1, sf_index=1), point("sunssf", "ABCD", 1, 1),
                    point("u16", "ABCD", 2, 1, sf_index=3), point("sunssf", "ABCD", 3, 1)],
                   [60000, 0xFFFE, 1234, 0x8000]),
    "u32_cdab": seed([point("u32", "CDAB", 0, 2), point("u32", "ABCD", 2, 2)],
                     [177, 0, 0xFFFF, 0xFFFF]),
    "string": seed([point("str", "ABCD", 0, 3), point("str", "BADC", 3, 2)],
                   [0x5355, 0x4E32, 0x3000, 0x4241, 0x0043]),
    "wide": seed([point("u64", "DCBA", 0, 4), point("f64", "ABCD", 4, 4),
                  point("f32", "BADC", 8, 2), point("acc64", "CDAB", 10, 4)],
                 [0x0300, 0x0200, 0x0100, 0, 0x4093, 0x4A00, 0, 0, 0xF147, 0x0020, 0, 0, 0, 7]),
    "failed_block": seed([point("s16", "ABCD", 0, 1, block=0),
                          point("bitfield16", "ABCD", 1, 1, block=1, no_default=True),
                          point("enum16", "ABCD", 2, 1, block=1)],
                         [0xFFCE, 0xFFFF, 3], block_status=(0, 1)),
    "extra_sentinels": seed([point("s16", "ABCD", 0, 1, sentinel_count=1),
                             point("s32", "ABCD", 1, 2, sentinel_count=2)],
                            [0x7FFF, 0x7FFF, 0xFFFF]),
}


def main():
    CORPUS.mkdir(exist_ok=True)
    for name, data in SEEDS.items():
        (CORPUS / name).write_bytes(data)


if __name__ == "__main__":
    main()
