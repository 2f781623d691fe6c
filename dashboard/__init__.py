"""IG Microscope dashboard (Streamlit): renders what igcore computed; run with `streamlit run dashboard/app.py`."""
