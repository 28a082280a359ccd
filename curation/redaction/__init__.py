"""Masks, restricted-zone blanking, verification: nothing unredacted reaches people or exports."""
