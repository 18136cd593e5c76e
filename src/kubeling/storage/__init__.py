"""kubeling.storage"""
