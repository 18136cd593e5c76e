"""kubeling.api"""
