"""Writer process for the spool tests: appends records as fast as it can.

Prints ``ready NEXT_SEQ`` after ``open()``, ``synced SEQ`` each time the spool's synced
sequence number rises (the records that must survive a kill -9) and, with a record
limit, ``done LAST_SEQ`` after ``close()``. Each line is one ``os.write``.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from bessai_edge.spool import Spool  # noqa: E402
from tests.spool.helpers import sample_record  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--segment-bytes", type=int, required=True)
    parser.add_argument("--fsync-interval", type=float, required=True)
    parser.add_argument("--max-total-bytes", type=int, required=True)
    parser.add_argument("--records", type=int, default=0, help="0: until killed")
    args = parser.parse_args()
    spool = Spool(args.directory, segment_max_bytes=args.segment_bytes,
                  fsync_interval_s=args.fsync_interval, max_total_bytes=args.max_total_bytes)
    spool.open()
    os.write(1, b"ready %d\n" % spool.stats()["next_seq"])
    synced = spool.synced_seq
    count = 0
    while args.records == 0 or count < args.records:
        spool.append(sample_record(count))
        count += 1
        if spool.synced_seq != synced:
            synced = spool.synced_seq
            os.write(1, b"synced %d\n" % synced)
    spool.close()
    os.write(1, b"done %d\n" % spool.synced_seq)


if __name__ == "__main__":
    main()
