"""betenet.data"""
