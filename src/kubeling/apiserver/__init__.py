"""kubeling.apiserver"""
